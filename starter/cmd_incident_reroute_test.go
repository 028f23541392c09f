//go:build integration

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/workflows"
)

// start opens an incident on the dev server with the given alert labels.
func (e *cliEnv) start(key, playbook, asset string, labels map[string]string) {
	e.t.Helper()
	_, err := e.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: workflows.IncidentWorkflowID(key), TaskQueue: e.queue},
		workflows.IncidentWorkflow, workflows.IncidentInput{
			IncidentID: "INC-" + key, Key: key, Asset: asset, Severity: "high", Playbook: playbook, OpenedBy: "detector:test",
			Alerts: []workflows.Alert{{ID: "a-" + key, Fingerprint: "fp-" + key, Source: "falco", Rule: "shell in container", Severity: "high",
				Asset: asset, Summary: "shell spawned", Labels: labels, ReceivedAt: time.Now().UTC()}},
		})
	if err != nil {
		e.t.Fatal(err)
	}
}

// await runs `starter incident show id` until its output holds every want
// (runs of spaces count as one: the columns' width varies).
func (e *cliEnv) await(id string, want ...string) string {
	e.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		out := e.must("", "incident", "show", id)
		flat := strings.Join(strings.Fields(out), " ")
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(flat, strings.Join(strings.Fields(w), " "))
		}
		if ok {
			return out
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("incident show %s lacks %q:\n%s", id, want, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestRelatedAndRerouteCLI, on the dev server with the real incident
// workflow, the real lookup (visibility) and re-route activities: an
// incident of another playbook on web-01 links the open one both ways;
// a lead re-routes an unknown-asset triage to an asset, which opens that
// asset's incident with the triage's alerts, linked, and closes the triage.
func TestRelatedAndRerouteCLI(t *testing.T) {
	e := newCLIEnv(t)
	e.must(keycloak.UserPassword+"\n", "login", "--username", "bob", "--otp", keycloak.TOTPCode("bob", time.Now()))
	// The first incident is visible with its asset before the second opens.
	e.await(e.key, "WAITING FOR APPROVAL")

	second := "credential-compromise:web-01-cli-" + uuid.NewString()[:8]
	e.start(second, "credential-compromise", "web-01", map[string]string{"realm": "iru", "username": "jdoe"})
	e.await(second, "Related:   "+e.key+" (container-compromise), open on the asset when this one opened")
	e.await(e.key, "Related:   INC-"+second+" "+second+" (credential-compromise), opened on the asset later")

	triage := workflows.UnknownAssetPlaybook + ":ghost-" + uuid.NewString()[:8]
	asset := "web-02-" + uuid.NewString()[:8]
	e.start(triage, workflows.UnknownAssetPlaybook, "ghost-7", map[string]string{"iru.unmapped": "true", workflows.RoutedPlaybookLabel: "container-compromise"})
	e.await(triage, "WAITING FOR APPROVAL")

	if _, code, err := e.run("", "incident", "reroute", e.key, "--asset", asset, "--reason", "not a triage"); code != exitRefused || err == nil || !strings.Contains(err.Error(), "only an unknown-asset triage") {
		t.Errorf("re-route of a playbook incident: exit %d (%v), want %d", code, err, exitRefused)
	}
	out := e.must("", "incident", "reroute", triage, "--asset", asset, "--reason", "ghost-7 is the old name")
	opened := "container-compromise:" + asset
	if !strings.Contains(out, "re-routed to "+asset+"; its alerts are in incident "+opened+" (container-compromise)") {
		t.Errorf("reroute output:\n%s", out)
	}
	e.await(triage, "State:     rerouted: re-routed by bob to "+asset, "Related:   "+opened+" (container-compromise), re-routed")
	e.await(opened, "Asset:     "+asset, "Related:   INC-"+triage+" "+triage+" (unknown-asset-triage), re-routed", "Alerts:    1 distinct")
}
