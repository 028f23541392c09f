package workflows

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/related"
)

// sshOnWeb1 is what the lookup finds: an ssh-brute-force incident open on
// web-1.
var sshOnWeb1 = related.Incident{WorkflowID: "incident:ssh-brute-force:web-1", RunID: "r1", Playbook: "ssh-brute-force"}

// TestRelatedIncidentFound: an incident that opens on an asset with an
// open incident of another playbook links it (status, ledger, timeline)
// and tells it with the link signal, naming itself; a second lookup of
// the same incident is not linked twice.
func TestRelatedIncidentFound(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	var asked related.FindInput
	h.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in related.FindInput) (related.FindResult, error) {
			asked = in
			return related.FindResult{Incidents: []related.Incident{sshOnWeb1, sshOnWeb1}}, nil
		})
	var told []LinkSignalInput
	h.env.OnSignalExternalWorkflow(mock.Anything, "incident:ssh-brute-force:web-1", "", LinkSignal, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			told = append(told, arg.(LinkSignalInput))
			return nil
		})
	h.approve(time.Minute, "stop", lead)
	_, st := h.run(input("wf-test"))

	if asked.Asset != "web-1" || asked.Self == "" {
		t.Errorf("lookup %+v, want asset web-1 and the incident's own workflow id", asked)
	}
	if len(st.Related) != 1 {
		t.Fatalf("related %+v, want one link", st.Related)
	}
	if r := st.Related[0]; r.WorkflowID != "incident:ssh-brute-force:web-1" || r.Playbook != "ssh-brute-force" || r.How != RelatedFound || r.At.IsZero() {
		t.Errorf("link %+v", r)
	}
	want := LinkSignalInput{WorkflowID: asked.Self, IncidentID: "INC-7", Playbook: "wf-test", Asset: "web-1"}
	if len(told) != 1 || told[0] != want {
		t.Errorf("told %+v, want once %+v", told, want)
	}
	entries := h.fake.ledgerKinds("related")
	if len(entries) != 1 || entries[0].Related == nil || entries[0].Related.WorkflowID != "incident:ssh-brute-force:web-1" || entries[0].Related.How != RelatedFound {
		t.Errorf("ledger related entries %+v", entries)
	}
	if !slices.ContainsFunc(st.Timeline, func(e TimelineEntry) bool {
		return e.What == "related incident incident:ssh-brute-force:web-1 (ssh-brute-force) is open on the same asset"
	}) {
		t.Error("timeline lacks the link")
	}
}

// TestRelatedLookupBesideTheFirstSteps: in runs from before the
// related-local change (one-marker), the lookup of the related incidents
// (a visibility query, a convenience) is an activity beside the first
// steps and does not hold up the response: the first detection step
// starts while the lookup still runs, and the link the lookup then finds
// is recorded all the same. Newer runs look up after the containment
// (TestRelatedLookupAfterContainment).
func TestRelatedLookupBesideTheFirstSteps(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.OnGetVersion(notifyLocalChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	h.env.OnGetVersion(relatedLocalChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	started := make(chan struct{})
	var once sync.Once
	h.fake.before[activities.PVEResolveAsset] = func(activities.ActionInput) { once.Do(func() { close(started) }) }
	var sawStep atomic.Bool
	h.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(
		func(context.Context, related.FindInput) (related.FindResult, error) {
			select {
			case <-started:
				sawStep.Store(true)
			case <-time.After(5 * time.Second): // the step waits for the lookup
			}
			return related.FindResult{Incidents: []related.Incident{sshOnWeb1}}, nil
		})
	h.env.OnSignalExternalWorkflow(mock.Anything, "incident:ssh-brute-force:web-1", "", LinkSignal, mock.Anything).Return(nil)
	h.approve(time.Minute, "stop", lead)
	res, st := h.run(input("wf-test"))

	if !sawStep.Load() {
		t.Error("the first detection step did not start while the related incidents were looked up")
	}
	if res.State != StateResolved {
		t.Errorf("state %s (%s), want resolved", res.State, res.Reason)
	}
	if len(st.Related) != 1 || st.Related[0].WorkflowID != "incident:ssh-brute-force:web-1" {
		t.Errorf("related %+v, want the link the lookup found", st.Related)
	}
	if n := len(h.fake.ledgerKinds("related")); n != 1 {
		t.Errorf("%d related ledger entries, want 1", n)
	}
}

// TestRelatedIncidentReported: the link signal of an incident that opened
// later on the same asset is recorded as a back-link, once; a link from
// another asset's incident or from itself is not.
func TestRelatedIncidentReported(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	other := LinkSignalInput{WorkflowID: "incident:container-compromise:web-1", IncidentID: "INC-9", Playbook: "container-compromise", Asset: "web-1"}
	h.env.RegisterDelayedCallback(func() {
		h.signal(LinkSignal, other)
		h.signal(LinkSignal, other)
		h.signal(LinkSignal, LinkSignalInput{WorkflowID: "incident:x:db-2", IncidentID: "INC-10", Playbook: "x", Asset: "db-2"})
		h.signal(LinkSignal, LinkSignalInput{WorkflowID: "default-test-workflow-id", Asset: "web-1"})
	}, 10*time.Second)
	h.approve(time.Minute, "stop", lead)
	_, st := h.run(input("wf-test"))

	want := []RelatedIncident{{WorkflowID: other.WorkflowID, IncidentID: "INC-9", Playbook: "container-compromise", How: RelatedReported}}
	got := slices.Clone(st.Related)
	for i := range got {
		got[i].At = time.Time{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("related %+v, want %+v", got, want)
	}
	if n := len(h.fake.ledgerKinds("related")); n != 1 {
		t.Errorf("%d related ledger entries, want 1", n)
	}
}

// TestRelatedLookupFailsPlaybookGoesOn: a visibility store that does not
// answer leaves a timeline entry and no link; the playbook runs.
func TestRelatedLookupFailsPlaybookGoesOn(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(related.FindResult{}, errors.New("visibility unavailable"))
	h.approve(time.Minute, "stop", lead)
	res, st := h.run(input("wf-test"))
	if res.State != StateResolved {
		t.Fatalf("state %s (%s), want resolved", res.State, res.Reason)
	}
	if len(st.Related) != 0 {
		t.Errorf("related %+v after a failed lookup", st.Related)
	}
	if !slices.ContainsFunc(st.Timeline, func(e TimelineEntry) bool {
		return e.What == "open incidents on the same asset could not be looked up"
	}) {
		t.Error("timeline does not say the lookup failed")
	}
}

// TestRelatedNotLookedUpForDrills: a drill links nothing.
func TestRelatedNotLookedUpForDrills(t *testing.T) {
	h := newHarness(t, makePlaybook(pbOpts{}))
	h.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(
		func(context.Context, related.FindInput) (related.FindResult, error) {
			t.Error("a drill looked up related incidents")
			return related.FindResult{}, nil
		})
	h.approve(time.Minute, "stop", lead)
	in := input("wf-test")
	in.Drill = true
	h.run(in)
}

// lookups counts how the related incidents were looked up: as local
// activities and as activities.
func (h *harness) lookups() (local, remote *atomic.Int32) {
	local, remote = new(atomic.Int32), new(atomic.Int32)
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		if info.ActivityType.Name == related.FindActivity {
			local.Add(1)
		}
	})
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == related.FindActivity {
			remote.Add(1)
		}
	})
	return local, remote
}

// TestRelatedLookupIsLocal: a new run looks up the related incidents as a
// local activity (a marker in its opening workflow task), not as an
// activity, and links what it finds; a run that recorded the one-marker
// change before it keeps looking up as an activity.
func TestRelatedLookupIsLocal(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		oneMarkerRun            bool
		wantLocal, wantActivity int32
	}{
		{name: "new run", wantLocal: 1},
		{name: "one-marker run", oneMarkerRun: true, wantActivity: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{}))
			if tc.oneMarkerRun {
				h.env.OnGetVersion(notifyLocalChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
				h.env.OnGetVersion(relatedLocalChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
			}
			local, remote := h.lookups()
			h.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(related.FindResult{Incidents: []related.Incident{sshOnWeb1}}, nil)
			h.env.OnSignalExternalWorkflow(mock.Anything, "incident:ssh-brute-force:web-1", "", LinkSignal, mock.Anything).Return(nil)
			h.approve(time.Minute, "stop", lead)
			_, st := h.run(input("wf-test"))
			if local.Load() != tc.wantLocal || remote.Load() != tc.wantActivity {
				t.Errorf("looked up %d times locally and %d times as an activity, want %d and %d", local.Load(), remote.Load(), tc.wantLocal, tc.wantActivity)
			}
			if len(st.Related) != 1 || st.Related[0].How != RelatedFound {
				t.Errorf("related %+v, want the link the lookup found", st.Related)
			}
		})
	}
}

// TestRelatedLocalLookupFailsActivityRetries: when the local lookup fails
// (a visibility store slower than its second, or down), the lookup runs
// again as an activity, and the link it finds is recorded; a lookup
// refused for its parameters (an asset the query cannot hold) is not
// tried again.
func TestRelatedLocalLookupFailsActivityRetries(t *testing.T) {
	for _, tc := range []struct {
		name         string
		firstErr     error
		wantActivity int32
		wantLinks    int
	}{
		{name: "timeout", firstErr: temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil), wantActivity: 1, wantLinks: 1},
		{name: "bad params", firstErr: temporal.NewNonRetryableApplicationError("asset with a quote", activities.ErrTypeBadParams, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{}))
			local, remote := h.lookups()
			var calls atomic.Int32
			h.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(
				func(context.Context, related.FindInput) (related.FindResult, error) {
					if calls.Add(1) == 1 {
						return related.FindResult{}, tc.firstErr
					}
					return related.FindResult{Incidents: []related.Incident{sshOnWeb1}}, nil
				})
			h.env.OnSignalExternalWorkflow(mock.Anything, "incident:ssh-brute-force:web-1", "", LinkSignal, mock.Anything).Return(nil)
			h.approve(time.Minute, "stop", lead)
			res, st := h.run(input("wf-test"))
			if res.State != StateResolved {
				t.Fatalf("state %s (%s), want resolved", res.State, res.Reason)
			}
			if local.Load() != 1 || remote.Load() != tc.wantActivity {
				t.Errorf("looked up %d times locally and %d times as an activity, want 1 and %d", local.Load(), remote.Load(), tc.wantActivity)
			}
			if len(st.Related) != tc.wantLinks {
				t.Errorf("related %+v, want %d link(s)", st.Related, tc.wantLinks)
			}
			failed := slices.ContainsFunc(st.Timeline, func(e TimelineEntry) bool {
				return e.What == "open incidents on the same asset could not be looked up"
			})
			if failed != (tc.wantLinks == 0) {
				t.Errorf("timeline says the lookup failed: %v, want %v", failed, tc.wantLinks == 0)
			}
		})
	}
}

// gatedPlaybook asks for an approval before its one detection step, so
// the incident waits for a person before anything is contained.
const gatedPlaybook = `name: wf-gated
version: "1"
description: approval first
severity_default: high
phases:
  detection:
    - id: gate
      action: pve.resolve_asset
      params: {asset: "{{ .Asset }}"}
      approval: {roles: [ir-lead], quorum: 1, timeout: 30m}
  containment:
    - id: isolate
      action: pve.isolate
      params: {asset: "{{ .Asset }}", reason: "gated"}
  investigation: []
  remediation: []
  recovery: []
  post_incident: []
`

// TestRelatedLookupAfterContainment: the local lookup holds the workflow
// task it runs in, so it waits until nothing the containment needs is in
// front of it: until the containment phase is over, or, when the incident
// first waits for a person, while it waits (before anything is
// contained).
func TestRelatedLookupAfterContainment(t *testing.T) {
	for _, tc := range []struct {
		name, playbook, approve string
		// wantRun and wantNotRun are actions that must have started, and
		// must not have started, when the lookup starts.
		wantRun, wantNotRun []string
	}{
		{name: "after the containment", playbook: "wf-test", approve: "stop",
			wantRun: []string{activities.PVEResolveAsset, activities.PVEIsolate, activities.KCDisableUser}, wantNotRun: []string{activities.NetHealthProbe}},
		{name: "while waiting for a decision", playbook: "wf-gated", approve: "gate",
			wantNotRun: []string{activities.PVEResolveAsset, activities.PVEIsolate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, makePlaybook(pbOpts{}), gatedPlaybook)
			// The test environment starts an activity the moment the
			// workflow asks for it, where a worker sends it with the
			// workflow task's commands, after the task's local
			// activities; so what is compared is the actions that had
			// finished when the lookup started, and an action that must
			// not come first waits (up to 5 s) for the lookup to start.
			var mu sync.Mutex
			var finished, before []string
			var looked atomic.Int32
			lookupStarted := make(chan struct{})
			var startOnce sync.Once
			for _, a := range slices.Concat(tc.wantRun, tc.wantNotRun) {
				mustWait := slices.Contains(tc.wantNotRun, a)
				h.fake.before[a] = func(activities.ActionInput) {
					if mustWait {
						select {
						case <-lookupStarted:
						case <-time.After(5 * time.Second):
						}
					}
					mu.Lock()
					finished = append(finished, a)
					mu.Unlock()
				}
			}
			h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
				if info.ActivityType.Name != related.FindActivity {
					return
				}
				mu.Lock()
				before = slices.Clone(finished)
				mu.Unlock()
				looked.Add(1)
				startOnce.Do(func() { close(lookupStarted) })
			})
			h.approve(time.Minute, tc.approve, lead)
			res, _ := h.run(input(tc.playbook))
			if res.State != StateResolved {
				t.Fatalf("state %s (%s), want resolved", res.State, res.Reason)
			}
			if looked.Load() != 1 {
				t.Fatalf("looked up %d times, want 1", looked.Load())
			}
			for _, a := range tc.wantRun {
				if !slices.Contains(before, a) {
					t.Errorf("%s had not finished when the lookup started (finished: %v)", a, before)
				}
			}
			for _, a := range tc.wantNotRun {
				if slices.Contains(before, a) {
					t.Errorf("%s had finished before the lookup started (finished: %v)", a, before)
				}
			}
		})
	}
}

// TestRelatedLookupSurvivesContinueAsNew: an incident that continues as
// new before its containment is over (the lookup waits for that) links
// the related incidents in the next run; and a run that had linked one
// before it continued (but may not have told it) tells it in the next,
// once.
func TestRelatedLookupSurvivesContinueAsNew(t *testing.T) {
	pb := makePlaybook(pbOpts{})
	for _, tc := range []struct {
		name string
		// linked is what the first run had linked, put into the carry as
		// a run that continued as new between the link and telling it
		// would leave it.
		linked []RelatedIncident
	}{
		{name: "not looked up yet"},
		{name: "linked but maybe not told", linked: []RelatedIncident{{WorkflowID: sshOnWeb1.WorkflowID, Playbook: sshOnWeb1.Playbook, How: RelatedFound}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, pb)
			var looked atomic.Int32
			h.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(
				func(context.Context, related.FindInput) (related.FindResult, error) {
					looked.Add(1)
					return related.FindResult{Incidents: []related.Incident{sshOnWeb1}}, nil
				})
			in := input("wf-test")
			in.ContinueAsNewAfter = 1
			h.env.RegisterDelayedCallback(func() {
				h.env.SignalWorkflow(AlertSignal, AlertSignalInput{Alerts: []Alert{{ID: "b1", Fingerprint: "fp-b1"}}})
			}, 0)
			next := h.continuedAsNew(in)
			c := next.Carry
			if !c.Status.Metrics.ContainedAt.IsZero() || looked.Load() != 0 || len(c.Status.Related) != 0 {
				t.Fatalf("the first run continued as new after its containment (contained at %v) or its lookup (%d, links %+v): the case is not tested",
					c.Status.Metrics.ContainedAt, looked.Load(), c.Status.Related)
			}
			if !c.RelatedPending {
				t.Error("the carry does not say the related incidents are still to be linked")
			}
			c.Status.Related = append(c.Status.Related, tc.linked...)

			next.ContinueAsNewAfter = 0
			h2 := newHarnessWith(t, h.fake, pb)
			h2.env.OnActivity(related.FindActivity, mock.Anything, mock.Anything).Return(
				func(context.Context, related.FindInput) (related.FindResult, error) {
					looked.Add(1)
					return related.FindResult{Incidents: []related.Incident{sshOnWeb1}}, nil
				})
			var told []LinkSignalInput
			h2.env.OnSignalExternalWorkflow(mock.Anything, sshOnWeb1.WorkflowID, "", LinkSignal, mock.Anything).Return(
				func(_, _, _, _ string, arg any) error {
					told = append(told, arg.(LinkSignalInput))
					return nil
				})
			h2.approve(time.Minute, "stop", lead)
			res, st := h2.run(next)
			if res.State != StateResolved {
				t.Fatalf("state = %s (%s)", res.State, res.Reason)
			}
			if looked.Load() != 1 {
				t.Errorf("looked up %d times over both runs, want 1", looked.Load())
			}
			if len(st.Related) != 1 || st.Related[0].WorkflowID != sshOnWeb1.WorkflowID || st.Related[0].How != RelatedFound {
				t.Errorf("related %+v, want the one found", st.Related)
			}
			if len(told) != 1 || told[0].WorkflowID == "" || told[0].Asset != "web-1" {
				t.Errorf("told %+v, want the found incident told once", told)
			}
		})
	}
}
