//go:build integration

package test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// noAssets is an inventory without assets: every alert goes to the
// unknown-asset triage, whose incident key is the asset's name.
type noAssets struct{}

func (noAssets) Assets(context.Context) ([]inventory.Asset, error) { return nil, nil }

// TestSpoolPerAPIServer: one detector's alerts go alternately to two API
// servers, as a load balancer sends them; each server has its own spool on
// its own disk and forwards to the same Temporal. Every alert lands in the
// one incident of its key (the workflow id is the key, SignalWithStart
// joins whichever server comes first), the incident receives every alert
// exactly once (a spool entry is deleted only after its signal succeeded,
// and the incident ignores an alert id it has seen), and an alert the
// detector re-sent to the other server (same fingerprint) is one alert with
// a count, not two.
func TestSpoolPerAPIServer(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	const key = "gk-spool-replicas"
	det := []auth.Detector{{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{{ID: "g1", SHA256: auth.HashKey("g1", key)}}}}
	var urls []string
	var services []*intake.Service
	for i := range 2 {
		svc, err := intake.Open(intake.Config{SpoolDir: filepath.Join(t.TempDir(), fmt.Sprintf("spool-%d", i)), Detectors: det, TaskQueue: p.TaskQueue},
			intake.Deps{Assets: noAssets{}, Signaler: forward.TemporalSignaler{Client: p.Client}, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		mux := http.NewServeMux()
		mux.Handle(intake.Pattern, svc.Handler)
		srv := httptest.NewServer(mux)
		t.Cleanup(func() {
			srv.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("intake %d: %v", i, err)
			}
			_ = svc.Close()
		})
		urls, services = append(urls, srv.URL), append(services, svc)
	}
	asset := fmt.Sprintf("spool-replicas-%d", time.Now().UnixNano())
	body := func(fp string, i int) []byte {
		return fmt.Appendf(nil, `{"source":"lb","rule":"ContainerShell","severity":"high","asset":%q,"summary":"alert %d","fingerprint":%q,"observed_at":"2024-05-01T12:00:00Z"}`, asset, i, fp)
	}
	// 20 distinct alerts, round robin over the two servers; alerts 0-4 are
	// then re-sent, each to the server that did not take it first.
	const distinct, resent = 20, 5
	posts := 0
	post := func(server int, b []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, urls[server]+"/v1/alerts/generic", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post to server %d: %d", server, resp.StatusCode)
		}
		posts++
	}
	for i := range distinct {
		post(i%2, body(fmt.Sprintf("fp-%02d", i), i))
	}
	for i := range resent {
		post((i+1)%2, body(fmt.Sprintf("fp-%02d", i), i))
	}
	wfID := workflows.IncidentWorkflowID(workflows.UnknownAssetPlaybook + ":" + asset)
	var st workflows.IncidentStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		st, err = testplatform.Status(p.Client, wfID)
		if err == nil && st.AlertsReceived >= posts {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incident %s received %d of %d alerts (last error %v)", wfID, st.AlertsReceived, posts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, svc := range services {
		if n := svc.Spool.Stats().Pending; n != 0 {
			t.Errorf("server %d still holds %d alerts", i, n)
		}
	}
	time.Sleep(time.Second) // would a duplicate delivery arrive?
	if st, _ = testplatform.Status(p.Client, wfID); st.AlertsReceived != posts {
		t.Errorf("incident received %d alerts, want %d (each exactly once)", st.AlertsReceived, posts)
	}
	if len(st.Alerts) != distinct {
		t.Fatalf("%d distinct alerts in the incident, want %d", len(st.Alerts), distinct)
	}
	for _, a := range st.Alerts {
		want := 1
		if a.Fingerprint < fmt.Sprintf("fp-%02d", resent) {
			want = 2
		}
		if a.Count != want {
			t.Errorf("alert %s counted %d times, want %d", a.Fingerprint, a.Count, want)
		}
	}
	// One incident for the key: no other incident on the queue
	// (visibility is eventually consistent: wait for one, then check).
	q := fmt.Sprintf("TaskQueue = %q AND WorkflowType = %q", p.TaskQueue, workflows.IncidentWorkflow)
	var n int64
	for deadline := time.Now().Add(30 * time.Second); n < 1 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := p.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		cancel()
		if err != nil {
			t.Fatalf("count incidents: %v", err)
		}
		n = resp.GetCount()
	}
	if n != 1 {
		t.Errorf("%d incidents on the queue, want 1", n)
	}
}
