//go:build integration

package resilience

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/devserver"
	"github.com/iru-responder/responder/internal/intake"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/temporalclient"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// postAlert posts body to the intake as detector with key; it returns the
// status and the accepted alert ids.
func postAlert(c *http.Client, base, key string, body []byte) (int, []string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/alerts/"+detectorName, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, nil, fmt.Errorf("answer %d: %s", resp.StatusCode, raw)
	}
	var r intake.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("decode 202 body %q: %w", raw, err)
	}
	return resp.StatusCode, r.IDs, nil
}

// TestTemporalRestartDuringAlertStorm: detectors post a steady stream of
// alerts for three assets while the Temporal dev server (a dedicated one,
// with a database file) is stopped for 12 s and started again. The intake answers
// 202 throughout (its spool takes the alerts; only a full spool may
// answer 503, and this one never fills). Once the server is back the
// forwarder delivers everything: each key has exactly one incident, and
// each incident's status counts exactly the alerts accepted for it, by id.
func TestTemporalRestartDuringAlertStorm(t *testing.T) {
	began := time.Now()
	p := testplatform.New(t, testplatform.Options{NoWorker: true})
	cli, err := testenv.TemporalCLI()
	if err != nil {
		t.Fatal(err)
	}
	devLog := &testenv.LockedBuffer{}
	sctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dev, err := devserver.Start(sctx, devserver.Options{Binary: cli, DBFile: filepath.Join(t.TempDir(), "temporal.db"),
		SearchAttributes: workflows.SearchAttributeFlags(), Log: devLog})
	if err != nil {
		t.Fatalf("dedicated dev server: %v", err)
	}
	t.Cleanup(func() { _ = dev.Stop() })
	t.Logf("%5.1fs dedicated dev server up at %s", time.Since(began).Seconds(), dev.Address())

	logs := &testenv.LockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := client.Dial(client.Options{HostPort: dev.Address(), Namespace: dev.Namespace(), DataConverter: p.Host.DataConverter(),
		Logger: sdklog.NewStructuredLogger(log)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tag := runTag(t)
	tq := "resilience-storm-" + tag
	testenv.StartWorker(t, func() worker.Worker {
		wk := worker.New(c, tq, worker.Options{})
		p.Host.Register(wk, c)
		return wk
	})

	key, err := intakeauth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := intake.Open(intake.Config{SpoolDir: t.TempDir(), TaskQueue: tq,
		Detectors: []intakeauth.Detector{{Name: detectorName, Format: "generic", APIKeys: []intakeauth.APIKey{{ID: "k1", SHA256: intakeauth.HashKey("k1", key)}}}},
		// A load test: one loopback source posts faster than the intake's
		// default per-source and per-detector limits allow.
		Limits: intake.LimitsConfig{SourceRate: 1e6, SourceBurst: 1e6, SourceConcurrency: 1e6, DetectorRate: 1e6,
			DetectorBurst: 1e6, DetectorConc: 1e6, MaxSources: 100, SourceIdle: time.Minute},
	}, intake.Deps{Assets: testplatform.NewLabAssets(t, p.Env), Signaler: forward.TemporalSignaler{Client: c}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stopIntake := context.WithCancel(context.Background())
	intakeDone := make(chan struct{})
	go func() {
		defer close(intakeDone)
		if err := svc.Run(rctx); err != nil {
			t.Errorf("intake: %v", err)
		}
	}()
	t.Cleanup(func() { stopIntake(); <-intakeDone; _ = svc.Close() })
	mux := http.NewServeMux()
	mux.Handle(intake.Pattern, svc.Handler)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	// The storm: one sender per asset, an alert every 120 ms, each with its
	// own fingerprint (so the incident lists every one by id: fewer than
	// the 200 distinct alerts an incident keeps).
	assets := []string{"api-gateway", "iru-services", "database"}
	var mu sync.Mutex
	accepted := map[string][]string{} // workflow id → accepted alert ids
	var down atomic.Bool
	var duringOutage atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, asset := range assets {
		wfID := workflows.IncidentWorkflowID("container-compromise:" + asset)
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(120 * time.Millisecond):
				}
				wasDown := down.Load()
				body := genericAlert(asset, fmt.Sprintf("storm-%s-%s-%d", tag, asset, n), "storm alert", nil)
				code, ids, err := postAlert(ts.Client(), ts.URL, key, body)
				if err != nil || code != http.StatusAccepted || len(ids) != 1 {
					t.Errorf("post %d for %s (Temporal down: %v): %d %v %v", n, asset, wasDown, code, ids, err)
					continue
				}
				if wasDown && down.Load() {
					duringOutage.Add(1)
				}
				mu.Lock()
				accepted[wfID] = append(accepted[wfID], ids...)
				mu.Unlock()
			}
		})
	}

	time.Sleep(time.Second)
	down.Store(true)
	if err := dev.Stop(); err != nil {
		t.Fatal(err)
	}
	rctxReady, cancelReady := context.WithTimeout(context.Background(), 2*time.Second)
	if err := temporalclient.Ready(rctxReady, c); err == nil {
		t.Error("the dev server still answers after Stop: the outage is not real")
	}
	cancelReady()
	t.Logf("%5.1fs dev server stopped", time.Since(began).Seconds())
	// Longer than the forwarder's call timeout (10 s): its calls fail and
	// it backs off, rather than the SDK riding out the outage in one call.
	const outage = 12 * time.Second
	time.Sleep(outage)
	rs := time.Now()
	if err := dev.Restart(sctx); err != nil {
		t.Fatalf("restart dev server: %v", err)
	}
	down.Store(false)
	t.Logf("%5.1fs dev server back after %s down (%s to restart)", time.Since(began).Seconds(), time.Since(rs).Round(time.Millisecond)+outage, time.Since(rs).Round(time.Millisecond))
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	total := 0
	for _, ids := range accepted {
		total += len(ids)
	}
	t.Logf("%5.1fs storm over: %d alerts accepted, %d while Temporal was down", time.Since(began).Seconds(), total, duringOutage.Load())
	if duringOutage.Load() < 10 {
		t.Fatalf("only %d alerts were posted while Temporal was down: the outage was not covered", duringOutage.Load())
	}
	if st := svc.Handler.Stats(); st.Unavailable != 0 || st.Rejected != 0 {
		t.Errorf("intake stats: %+v, want no 503 and no rejection", st)
	}

	eventually(t, "spool drained", 90*time.Second, func() bool { return svc.Spool.Stats().Pending == 0 })
	fs := svc.Forwarder.Stats()
	t.Logf("%5.1fs spool drained (forwarder: %+v)", time.Since(began).Seconds(), fs)
	if fs.Failures == 0 || fs.Delivered != int64(total) {
		t.Errorf("forwarder %+v: want failed calls during the outage and all %d alerts delivered", fs, total)
	}
	for wfID, ids := range accepted {
		var st workflows.IncidentStatus
		eventually(t, "alerts counted by "+wfID, 60*time.Second, func() bool {
			s, err := status(c, wfID, 5*time.Second)
			if err != nil {
				return false
			}
			st = s
			return st.AlertsReceived >= len(ids)
		})
		if st.AlertsReceived != len(ids) {
			t.Errorf("%s counted %d alerts, %d were accepted", wfID, st.AlertsReceived, len(ids))
		}
		var got []string
		for _, a := range st.Alerts {
			got = append(got, a.ID)
		}
		// The state lists the distinct alerts up to its byte budget
		// (workflows/budget.go); every accepted alert is counted once
		// (redeliveries are dropped by id, so the count above proves each
		// arrived), and every listed one must be an accepted one.
		slices.Sort(got)
		want := slices.Sorted(slices.Values(ids))
		if len(got) == 0 || len(got) > len(want) || slices.ContainsFunc(got, func(id string) bool { _, ok := slices.BinarySearch(want, id); return !ok }) {
			t.Errorf("%s lists other alerts than were accepted: %d listed, %d accepted", wfID, len(got), len(want))
		}
		if len(got) < len(want) {
			t.Logf("%s lists %d of its %d alerts (state byte budget); all %d counted", wfID, len(got), len(want), st.AlertsReceived)
		}
	}
	// One incident per key: three workflow runs on the queue, no more
	// (visibility is eventually consistent: wait for three, then count).
	countRuns := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: fmt.Sprintf("TaskQueue = %q", tq)})
		if err != nil {
			return -1
		}
		return resp.GetCount()
	}
	var runs int64
	eventually(t, "incidents visible", 30*time.Second, func() bool { runs = countRuns(); return runs >= int64(len(assets)) })
	if runs != int64(len(assets)) {
		t.Errorf("%d incident runs on the queue, want %d (one per key)", runs, len(assets))
	}

	t.Run("logs hold no secret", func(t *testing.T) {
		secrets := map[string]string{"detector API key": key, "HSM PIN": envValue(t, p.Env, "IRU_HSM_PIN"),
			"PVE token secret": envValue(t, p.Env, "IRU_PVE_TOKEN_SECRET"), "Keycloak client secret": envValue(t, p.Env, "IRU_KEYCLOAK_CLIENT_SECRET")}
		assertNoSecrets(t, "intake, forwarder and worker logs", logs.String(), secrets)
		if d := devLog.String(); d != "" { // warn level: usually empty
			assertNoSecrets(t, "dev server log", d, secrets)
		}
	})
	t.Logf("scenario took %s", time.Since(began).Round(time.Millisecond))
}
