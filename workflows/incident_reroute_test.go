package workflows

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/decision"
)

// triageInput is a triage incident for ghost-9, whose alert the rules
// routed to container-compromise.
func triageInput() IncidentInput {
	in := input(UnknownAssetPlaybook)
	in.Asset = "ghost-9"
	in.Alerts[0].Asset = "ghost-9"
	in.Alerts[0].Labels = map[string]string{"iru.unmapped": "true", RoutedPlaybookLabel: "container-compromise", "container": "web-1"}
	return in
}

// rerouteFake records the incidents the re-route opens.
type rerouteFake struct {
	opened []RerouteOpenInput
	err    error
}

func (f *rerouteFake) open(_ context.Context, in RerouteOpenInput) (RerouteOpenResult, error) {
	if f.err != nil {
		return RerouteOpenResult{}, f.err
	}
	f.opened = append(f.opened, in)
	return RerouteOpenResult{WorkflowID: IncidentWorkflowID(in.Playbook + ":" + in.Asset)}, nil
}

func rerouteHarness(t *testing.T) (*harness, *rerouteFake, *[]LinkSignalInput) {
	h := newHarness(t)
	f := &rerouteFake{}
	h.env.RegisterActivityWithOptions(f.open, activity.RegisterOptions{Name: RerouteActivity})
	told := &[]LinkSignalInput{}
	h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", LinkSignal, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			*told = append(*told, arg.(LinkSignalInput))
			return nil
		})
	return h, f, told
}

// TestRerouteTriage: a lead picks the asset; the asset is resolved in the
// inventory, the rules' playbook opens for it with the triage's alerts
// (the unmapped mark dropped), the two incidents are linked both ways and
// the triage closes as re-routed, acting on nothing itself.
func TestRerouteTriage(t *testing.T) {
	h, f, told := rerouteHarness(t)
	u := h.update(time.Hour, RerouteUpdate, RerouteInput{By: lead, Asset: "web-1", Reason: "ghost-9 is web-1's old name"})
	res, st := h.run(triageInput())

	if u.rejected != nil || u.err != nil || !u.done {
		t.Fatalf("update: rejected %v, error %v, done %v", u.rejected, u.err, u.done)
	}
	want := RerouteResult{WorkflowID: "incident:container-compromise:web-1", Playbook: "container-compromise", Asset: "web-1"}
	if r, _ := u.result.(RerouteResult); r != want {
		t.Errorf("result %+v, want %+v", u.result, want)
	}
	if res.State != StateRerouted || !strings.Contains(res.Reason, "web-1's old name") {
		t.Errorf("state %s (%s), want rerouted with the reason", res.State, res.Reason)
	}
	if len(f.opened) != 1 {
		t.Fatalf("opened %+v, want one incident", f.opened)
	}
	o := f.opened[0]
	if o.Playbook != "container-compromise" || o.Asset != "web-1" || o.FromIncident != "INC-7" || o.By != lead.Subject || len(o.Alerts) != 1 {
		t.Errorf("opened %+v", o)
	}
	if a := o.Alerts[0]; a.ID != "a1" || a.Asset != "web-1" || a.Labels["iru.unmapped"] != "" || a.Labels["iru.rerouted_from"] != "INC-7" || a.Labels["container"] != "web-1" {
		t.Errorf("re-routed alert %+v", a)
	}
	if len(st.Related) != 1 || st.Related[0].WorkflowID != want.WorkflowID || st.Related[0].How != RelatedRerouted {
		t.Errorf("triage links %+v", st.Related)
	}
	if len(*told) != 1 || (*told)[0].How != RelatedRerouted || (*told)[0].IncidentID != "INC-7" || (*told)[0].Playbook != UnknownAssetPlaybook {
		t.Errorf("re-routed incident told %+v", *told)
	}
	if e := h.fake.ledgerKinds("reroute"); len(e) != 1 || e[0].Outcome != StateRerouted || e[0].Actor != lead.Subject || e[0].Detail["asset"] != "web-1" {
		t.Errorf("ledger reroute entries %+v", e)
	}
	for _, c := range h.fake.steps("") {
		in, _ := h.fake.call(c)
		if in.Action != activities.NotifySend && in.Action != activities.ReportGenerate && in.Action != activities.PVEResolveAsset {
			t.Errorf("triage ran %s (%s)", in.Action, c)
		}
	}
	if in, ok := h.fake.call("reroute"); !ok || in.Params["asset"] != "web-1" {
		t.Errorf("asset not resolved in the inventory: %+v", in)
	}
}

// TestRerouteRefused: re-routes that must not happen are refused, the
// triage stays open (a lead closes it afterwards) and no incident opens.
func TestRerouteRefused(t *testing.T) {
	responder := Approver{Subject: "sub-resp", Username: "rita", Roles: []string{"ir-responder"}, SourceIP: "10.1.0.10"}
	tests := []struct {
		name     string
		in       func() IncidentInput
		by       Approver
		asset    string
		setup    func(*harness, *rerouteFake)
		rejected string // the validator's refusal type
		failed   string // the handler's error text
	}{
		{"responder without the role", triageInput, responder, "web-1", nil, RejectWrongRole, ""},
		{"not a triage", func() IncidentInput { return input("container-compromise") }, lead, "web-1", nil, RejectNotTriage, ""},
		{"no asset", triageInput, lead, "", nil, activities.ErrTypeBadParams, ""},
		{"asset in no inventory", triageInput, lead, "ghost-10", func(h *harness, _ *rerouteFake) {
			h.fake.fail["reroute"] = activities.NewFinalError(activities.ErrTypeNotFound, "no container matches asset ghost-10", nil)
		}, "", "no container matches"},
		{"incident does not open", triageInput, lead, "web-1", func(_ *harness, f *rerouteFake) {
			f.err = activities.NewFinalError(activities.ErrTypeBadParams, "cannot start", nil)
		}, "", "cannot start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f, _ := rerouteHarness(t)
			if tt.setup != nil {
				tt.setup(h, f)
			}
			u := h.update(time.Hour, RerouteUpdate, RerouteInput{By: tt.by, Asset: tt.asset, Reason: "try"})
			h.env.RegisterDelayedCallback(func() {
				if st := h.status(); st.State != StateOpen {
					t.Errorf("after the refused re-route the incident is %s", st.State)
				}
				h.signal(AbortSignal, AbortInput{By: lead, Reason: "closing"})
			}, 2*time.Hour)
			in := tt.in()
			if in.Playbook != UnknownAssetPlaybook {
				h.approve(90*time.Minute, "approve_isolation", lead)
			}
			res, _ := h.run(in)
			if tt.rejected != "" && RejectionType(u.rejected) != tt.rejected {
				t.Errorf("rejection %v, want %s", u.rejected, tt.rejected)
			}
			if tt.failed != "" && (u.err == nil || !strings.Contains(u.err.Error(), tt.failed)) {
				t.Errorf("update error %v, want %q", u.err, tt.failed)
			}
			if tt.failed != "" && !slices.ContainsFunc(h.fake.ledgerKinds("reroute"), func(e activities.LedgerAppendInput) bool { return e.Outcome == "refused" }) {
				t.Error("the failed re-route is not in the ledger")
			}
			if len(f.opened) != 0 {
				t.Errorf("opened %+v", f.opened)
			}
			if res.State == StateRerouted {
				t.Errorf("state %s", res.State)
			}
		})
	}
}

// TestRerouteStatementBindsAsset: a reroute statement signed for one
// asset, sent with another (a client that swaps the asset after the API
// server signed), is refused; nothing opens.
func TestRerouteStatementBindsAsset(t *testing.T) {
	h, f, _ := rerouteHarness(t)
	var u *updateOutcome
	h.env.RegisterDelayedCallback(func() {
		stmt := h.statement(decision.Reroute, "web-1", lead, "ok")
		u = h.update(0, RerouteUpdate, RerouteInput{By: lead, Asset: "db-9", Reason: "ok", Statement: stmt})
	}, time.Hour)
	h.env.RegisterDelayedCallback(func() { h.signal(AbortSignal, AbortInput{By: lead, Reason: "closing"}) }, 2*time.Hour)
	res, _ := h.run(triageInput())
	if u == nil || RejectionType(u.rejected) != RejectStatement {
		t.Errorf("swapped asset: %+v, want %s", u, RejectStatement)
	}
	if len(f.opened) != 0 || res.State != StateAborted {
		t.Errorf("opened %+v, state %s", f.opened, res.State)
	}
}
