//go:build integration

package test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/related"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestIncidentOpeningEvents opens an incident as the intake does (a
// SignalWithStart that sets the search attributes) and checks what its
// opening costs the server in history: one version marker (not one per
// change), no upsert of search attributes that the start set already
// (each upsert is a visibility write), and no activity for the lookup of
// the related incidents (a local activity). The search attributes still
// hold the incident's values.
func TestIncidentOpeningEvents(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	const asset = "api-gateway"
	ct := containerByName(t, p.Lab.PVE.State(), asset)
	ref := &activities.AssetRef{Name: asset, Node: ct.Node, VMID: ct.VMID}
	key := "container-compromise:" + asset
	wfID := workflows.IncidentWorkflowID(key)
	alert := workflows.Alert{ID: "opening-1", Fingerprint: "falco:shell:" + asset, Source: "falco", Rule: "Terminal shell in container",
		Severity: "critical", Asset: asset, AssetRef: ref, Summary: "shell spawned in api-gateway",
		Labels:     map[string]string{"health_url": p.Lab.HealthURL(asset), "username": "jdoe", "realm": keycloak.Realm},
		ObservedAt: time.Now().Add(-time.Second), ReceivedAt: time.Now()}
	sig := forward.TemporalSignaler{Client: p.Client}
	err := sig.SignalWithStart(context.Background(), forward.Start{WorkflowID: wfID, TaskQueue: p.TaskQueue,
		Signal: workflows.AlertSignalInput{Alerts: []workflows.Alert{alert}},
		Input: workflows.IncidentInput{IncidentID: "INC-OPENING-1", Key: key, Asset: asset, AssetRef: ref, Severity: "critical",
			Playbook: "container-compromise", OpenedBy: "system:intake"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Client.TerminateWorkflow(context.Background(), wfID, "", "test done") })
	// The first phase's steps ran: the opening's workflow tasks are done
	// (the incident may be in a later phase by now).
	testplatform.WaitStep(t, p.Client, wfID, "resolve", workflows.StepSucceeded, 60*time.Second)

	var markers, detectionUpserts, lookups int
	for _, e := range historyEvents(t, p.Client, wfID) {
		switch e.GetEventType() {
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == related.FindActivity {
				lookups++
			}
		case enums.EVENT_TYPE_MARKER_RECORDED:
			if e.GetMarkerRecordedEventAttributes().GetMarkerName() == "Version" {
				markers++
			}
		case enums.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			if upsertsPhase(e, "detection") {
				detectionUpserts++
			}
		}
	}
	if markers != 1 {
		t.Errorf("version markers = %d, want 1", markers)
	}
	if lookups != 0 {
		t.Errorf("the related incidents were looked up by %d activities, want 0 (a local activity)", lookups)
	}
	if detectionUpserts != 0 {
		t.Errorf("upserts of IruPhase=detection = %d, want 0 (the start set it)", detectionUpserts)
	}
	desc, err := p.Client.DescribeWorkflow(context.Background(), wfID, "")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[temporal.SearchAttributeKeyKeyword]string{workflows.SeverityKey: "critical",
		workflows.PlaybookKey: "container-compromise", workflows.AssetKey: asset} {
		if got, _ := desc.TypedSearchAttributes.GetKeyword(k); got != want {
			t.Errorf("search attribute %s = %q, want %q", k.GetName(), got, want)
		}
	}
}

// upsertsPhase reports whether the upsert event sets IruPhase to phase.
func upsertsPhase(e *historypb.HistoryEvent, phase string) bool {
	f, ok := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["IruPhase"]
	return ok && string(f.GetData()) == `"`+phase+`"`
}
