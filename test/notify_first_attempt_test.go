//go:build integration

package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// TestApprovalNotificationFirstAttempt plays a container compromise
// through the real worker with a Slack webhook and checks the approval
// requests' notifications, whose first attempt is a local activity while
// the incident waits for the decision: each reaches Slack once when the
// webhook answers, and, when the webhook refuses the first post of each,
// it still arrives: the activity that follows sends it again.
func TestApprovalNotificationFirstAttempt(t *testing.T) {
	tests := []struct {
		name string
		// refuseFirst makes the webhook answer 503 to the first post of
		// each approval request.
		refuseFirst bool
		wantPosts   int
	}{
		{name: "delivered by the first attempt", wantPosts: 1},
		{name: "first attempt refused", refuseFirst: true, wantPosts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			posts := map[string]int{} // approval request text -> posts
			slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				var m struct {
					Text string `json:"text"`
				}
				if err := json.Unmarshal(b, &m); err != nil {
					t.Errorf("Slack body %q: %v", b, err)
				}
				if strings.Contains(m.Text, "needs 1 approval") || strings.Contains(m.Text, "needs 2 approval") {
					mu.Lock()
					posts[m.Text]++
					n := posts[m.Text]
					mu.Unlock()
					if tt.refuseFirst && n == 1 {
						w.WriteHeader(http.StatusServiceUnavailable)
						return
					}
				}
				w.WriteHeader(http.StatusOK)
			}))
			defer slack.Close()
			p := testplatform.New(t, testplatform.Options{Env: []string{"IRU_NOTIFY_SLACK_URL=" + slack.URL + "/services/T0/B0/x"}})
			const asset = "api-gateway"
			in := workflows.IncidentInput{IncidentID: "INC-NOTIFY", Key: "container-compromise:" + asset, Asset: asset, Severity: "critical",
				Playbook: "container-compromise", OpenedBy: "system:intake",
				Alerts: []workflows.Alert{{ID: "a1", Fingerprint: "f1", Source: "falco", Rule: "shell", Severity: "critical", Asset: asset, Summary: "shell spawned",
					Labels: map[string]string{"realm": keycloak.Realm, "username": "jdoe", "health_url": p.Lab.HealthURL(asset)}, ObservedAt: time.Now(), ReceivedAt: time.Now()}}}
			wfID := workflows.IncidentWorkflowID(in.Key)
			res := p.RunApprovingAll(t, in)
			if res.State != workflows.StateResolved {
				t.Fatalf("state = %s (%s)", res.State, res.Reason)
			}
			st, err := testplatform.Status(p.Client, wfID)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range st.Timeline {
				if strings.HasPrefix(e.What, "notification to ") {
					t.Errorf("timeline: %s (%s)", e.What, e.Reason)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(posts) == 0 {
				t.Fatal("no approval request reached Slack")
			}
			// The first attempts were local activities: the history holds
			// a notify.send activity for each of the playbook's own
			// notification steps that ran, and one more per approval
			// request only when its first attempt did not deliver it.
			own := 0
			for _, s := range st.Steps {
				if s.Action == activities.NotifySend && s.Status == workflows.StepSucceeded {
					own++
				}
			}
			acts := 0
			for _, e := range historyEvents(t, p.Client, wfID) {
				if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activities.NotifySend {
					acts++
				}
			}
			want := own
			if tt.refuseFirst {
				want += len(posts)
			}
			if acts != want {
				t.Errorf("notify.send activities = %d, want %d (%d steps of the playbook, %d approval requests)", acts, want, own, len(posts))
			}
			for text, n := range posts {
				if n != tt.wantPosts {
					t.Errorf("approval request posted %d times, want %d: %s", n, tt.wantPosts, text)
				}
			}
		})
	}
}
