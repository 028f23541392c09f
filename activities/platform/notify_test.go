package platform

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/notify"
)

// receiver is a webhook that answers 503 to its first fails posts.
type receiver struct {
	mu          sync.Mutex
	posts, fail int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if r.posts <= r.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.posts
}

// TestNotifySendFirstAttempt: as a local activity (an incident's first
// attempt) NotifySend tries each channel once and reports the ones it
// did not reach in the undelivered output; as an activity it retries
// them; with only it sends to the named channels alone.
func TestNotifySendFirstAttempt(t *testing.T) {
	tests := []struct {
		name            string
		local           bool
		only            string
		wantUndelivered string
		// wantUp and wantFlaky are the posts each channel received.
		wantUp, wantFlaky int
	}{
		{name: "local: one attempt each", local: true, wantUndelivered: "flaky", wantUp: 1, wantFlaky: 1},
		{name: "activity: retried", wantUndelivered: "", wantUp: 1, wantFlaky: 2},
		{name: "activity to the channel not reached", only: "flaky", wantUndelivered: "", wantUp: 0, wantFlaky: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, flaky := &receiver{}, &receiver{fail: 1}
			upSrv, flakySrv := httptest.NewServer(up), httptest.NewServer(flaky)
			defer upSrv.Close()
			defer flakySrv.Close()
			a := &Activities{Notifier: &notify.Notifier{Backoff: time.Millisecond, Channels: []notify.Channel{
				{Name: "up", Kind: "webhook", URL: upSrv.URL}, {Name: "flaky", Kind: "webhook", URL: flakySrv.URL}}}}
			in := activities.ActionInput{IncidentID: "INC-1", StepID: "approval-stop", Action: activities.NotifySend, Asset: "web-1",
				IdempotencyKey: "INC-1/approval-stop", Params: map[string]string{"event": "approval_needed", "channel": "ir-lead", "only": tt.only}}
			var env testsuite.WorkflowTestSuite
			aenv := env.NewTestActivityEnvironment()
			aenv.RegisterActivity(a.NotifySend)
			run := aenv.ExecuteActivity
			if tt.local {
				run = aenv.ExecuteLocalActivity
			}
			v, err := run(a.NotifySend, in)
			if err != nil {
				t.Fatal(err)
			}
			var res activities.ActionResult
			if err := v.Get(&res); err != nil {
				t.Fatal(err)
			}
			if got := res.Outputs[activities.OutputUndelivered]; got != tt.wantUndelivered {
				t.Errorf("undelivered = %q, want %q (%s)", got, tt.wantUndelivered, res.Summary)
			}
			if up.count() != tt.wantUp || flaky.count() != tt.wantFlaky {
				t.Errorf("posts: up %d, flaky %d; want %d, %d", up.count(), flaky.count(), tt.wantUp, tt.wantFlaky)
			}
		})
	}
}
