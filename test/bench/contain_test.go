//go:build integration

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	kcact "github.com/iru-responder/responder/activities/keycloak"
	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/secretsink"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// ttcParams set the time-to-contain measurement.
type ttcParams struct {
	// Incidents is how many incidents (one per container and account).
	Incidents int
	// Interval is the time between two incidents' alerts.
	Interval time.Duration
	// APILatency is added to every PVE and Keycloak API call.
	APILatency time.Duration
	// SnapshotTask is how long a vzsnapshot task runs.
	SnapshotTask time.Duration
	// Timeout bounds each side's run.
	Timeout time.Duration
	// Target is the Temporal server (nil: testenv.Current).
	Target testenv.Target
}

// ttcResult is one time-to-contain measurement, sorted latencies per side.
type ttcResult struct {
	Platform, Sequential []time.Duration
}

// BenchmarkTimeToContain measures the time from a detector's POST to the
// intake until the container is isolated (firewall drops everything but
// the allow list) and the account's Keycloak sessions are gone, as seen in
// the lab's state, over 100 incidents on 100 containers with 100 accounts
// (one alert every 100 ms), through the real intake (API-key detector,
// spool, forwarder), the real incident workflow and the shipped
// container-compromise playbook (which contains without approval). Every
// PVE and Keycloak API call takes 30 ms more and a vzsnapshot task runs
// 2 s. Baseline, in the same run against the same lab, reset: a plain Go
// program calls the same activity implementations one after another per
// incident (resolve asset, isolate, snapshot, resolve user, log out), the
// incidents arriving at the same pace; its time is measured the same way.
//
// It runs on the dev server and on the real cluster (sub-benchmarks dev
// and cluster). IRU_BENCH_HISTORY=file writes the middle incident's
// history there, each event with its time from the alert's POST.
//
//	go test -run '^$' -bench TimeToContain -benchtime 1x ./test/bench/
//	go test -run '^$' -bench 'TimeToContain/.*/20-at' -benchtime 1x ./test/bench/
func BenchmarkTimeToContain(b *testing.B) {
	for _, target := range testenv.Targets {
		b.Run(target, func(b *testing.B) {
			for _, tc := range []struct {
				name      string
				incidents int
				interval  time.Duration
			}{
				// The brief's load: 100 incidents, ten a second.
				{"100-at-10per-s", inventorySize, 100 * time.Millisecond},
				// Light load: one incident a second, so the figures show the
				// platform's latency without queueing.
				{"20-at-1per-s", 20, time.Second},
			} {
				b.Run(tc.name, func(b *testing.B) {
					p := ttcParams{Incidents: tc.incidents, Interval: tc.interval, APILatency: 30 * time.Millisecond,
						SnapshotTask: 2 * time.Second, Timeout: 5 * time.Minute, Target: testenv.ByName(b, target)}
					for range b.N {
						reportTimeToContain(b, p, measureTimeToContain(b, p))
					}
				})
			}
		})
	}
}

// reportTimeToContain reports one measurement's percentiles and ratios.
func reportTimeToContain(b *testing.B, p ttcParams, res ttcResult) {
	pp50, pp99 := percentile(res.Platform, 50), percentile(res.Platform, 99)
	sp50, sp99 := percentile(res.Sequential, 50), percentile(res.Sequential, 99)
	b.ReportMetric(ms(pp50), "platform-p50-ms")
	b.ReportMetric(ms(pp99), "platform-p99-ms")
	b.ReportMetric(ms(sp50), "sequential-p50-ms")
	b.ReportMetric(ms(sp99), "sequential-p99-ms")
	b.ReportMetric(float64(pp50)/float64(sp50), "p50-platform/sequential")
	b.ReportMetric(float64(pp99)/float64(sp99), "p99-platform/sequential")
	b.Logf("| time to contain (%s) | %d incidents, 1 per %s, API +%s, snapshot %s | platform p50 %s p99 %s | sequential p50 %s p99 %s | ratio p50 %.2f p99 %.2f |",
		p.Target.Name(), p.Incidents, p.Interval, p.APILatency, p.SnapshotTask, pp50.Round(time.Millisecond), pp99.Round(time.Millisecond),
		sp50.Round(time.Millisecond), sp99.Round(time.Millisecond), float64(pp50)/float64(sp50), float64(pp99)/float64(sp99))
}

// measureTimeToContain runs the sequential baseline, resets the lab, then
// runs the platform, on one rig.
func measureTimeToContain(tb testing.TB, p ttcParams) ttcResult {
	tb.Helper()
	if p.Incidents > inventorySize {
		tb.Fatalf("%d incidents: the inventory has %d containers", p.Incidents, inventorySize)
	}
	r := newRig(tb, rigOptions{Users: p.Incidents, TaskDurations: map[string]time.Duration{"vzsnapshot": p.SnapshotTask}, Target: p.Target})
	var res ttcResult

	// Baseline: the same actions, one after another, per incident.
	r.loginUsers(tb, p.Incidents)
	r.setLatency(tb, p.APILatency)
	res.Sequential = r.runSequential(tb, p)

	// Reset the lab: containers as in the inventory, faults cleared; the
	// accounts log in again.
	if err := r.PVE.Reset(); err != nil {
		tb.Fatal(err)
	}
	r.setLatency(tb, 0)
	r.loginUsers(tb, p.Incidents)
	ir := r.openIntake(tb, "") // reads the inventory without the added latency
	r.setLatency(tb, p.APILatency)
	res.Platform = r.runPlatform(tb, p, ir)
	r.setLatency(tb, 0)
	return res
}

// containWatch polls the lab for each started incident until its container
// is firewall-isolated and its account has no session left, and records
// how long that took from the incident's start.
type containWatch struct {
	pve *pve.Server
	kc  *keycloak.Server

	mu    sync.Mutex
	start []time.Time
	took  []time.Duration
	left  int
	done  chan struct{}
}

func newContainWatch(p *pve.Server, kc *keycloak.Server, n int) *containWatch {
	return &containWatch{pve: p, kc: kc, start: make([]time.Time, n), took: make([]time.Duration, n), left: n, done: make(chan struct{})}
}

// begin marks incident i as started now.
func (w *containWatch) begin(i int) {
	w.mu.Lock()
	w.start[i] = time.Now()
	w.mu.Unlock()
}

// contained reports whether incident i's containment is visible in the lab.
func (w *containWatch) contained(i int) (bool, error) {
	iso, err := w.pve.EffectiveIsolation(vmid(i))
	if err != nil {
		return false, err
	}
	if !iso.FirewallIsolated {
		return false, nil
	}
	sess, err := w.kc.Sessions(keycloak.Realm, benchUser(i))
	if err != nil {
		return false, err
	}
	return len(sess) == 0, nil
}

// run polls every 5 ms until every incident is contained or ctx ends.
func (w *containWatch) run(ctx context.Context, tb testing.TB) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		pending := make(map[int]time.Time)
		for i, s := range w.start {
			if !s.IsZero() && w.took[i] == 0 {
				pending[i] = s
			}
		}
		w.mu.Unlock()
		for i, s := range pending {
			ok, err := w.contained(i)
			if err != nil {
				tb.Errorf("lab state of incident %d: %v", i, err)
				return
			}
			if !ok {
				continue
			}
			d := time.Since(s)
			w.mu.Lock()
			w.took[i] = d
			w.left--
			if w.left == 0 {
				close(w.done)
			}
			w.mu.Unlock()
		}
	}
}

// wait waits for every incident's containment, or fails after timeout
// listing the incidents not contained.
func (w *containWatch) wait(tb testing.TB, timeout time.Duration, explain func(i int) string) []time.Duration {
	tb.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		w.mu.Lock()
		var missing []int
		for i, d := range w.took {
			if d == 0 {
				missing = append(missing, i)
			}
		}
		w.mu.Unlock()
		for _, i := range missing[:min(len(missing), 3)] {
			tb.Logf("incident %d (%s) not contained: %s", i, asset(i), explain(i))
		}
		tb.Fatalf("%d of %d incidents not contained after %s", len(missing), len(w.took), timeout)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.took)
	slices.Sort(out)
	return out
}

// pace starts fn(i) for each incident, one every interval, and waits for
// all of them to return.
func pace(n int, interval time.Duration, fn func(i int)) {
	var wg sync.WaitGroup
	next := time.Now()
	for i := range n {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

// runSequential runs the baseline: per incident, the activity
// implementations called directly, one after another.
func (r *rig) runSequential(tb testing.TB, p ttcParams) []time.Duration {
	tb.Helper()
	sink := stores.EvidenceSink{L: r.Host.Stores().Evidence}
	secrets := secretsink.File{Dir: r.Config.SecretsDir}
	pv, err := pveact.New(r.Config.PVE, sink, secrets, pveact.WithRecordKey(r.Host.Keys()))
	if err != nil {
		tb.Fatal(err)
	}
	kc, err := kcact.New(r.Config.Keycloak, sink, secrets)
	if err != nil {
		tb.Fatal(err)
	}
	w := newContainWatch(r.PVE, r.Keycloak, p.Incidents)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, tb)
	errs := make([]error, p.Incidents)
	pace(p.Incidents, p.Interval, func(i int) {
		w.begin(i)
		errs[i] = containSequentially(ctx, pv, kc, i)
	})
	return w.wait(tb, p.Timeout, func(i int) string { return fmt.Sprint(errs[i]) })
}

// containSequentially is what a script would do for incident i: resolve
// the container, isolate it, snapshot it, resolve the account, log it out.
func containSequentially(ctx context.Context, pv *pveact.Activities, kc *kcact.Activities, i int) error {
	id := fmt.Sprintf("INC-SEQ-%d", i)
	call := func(fn func(context.Context, activities.ActionInput) (activities.ActionResult, error), action, step string, params map[string]string) (activities.ActionResult, error) {
		in := activities.ActionInput{IncidentID: id, StepID: step, Action: action, Asset: asset(i),
			Params: withDefaults(action, params), IdempotencyKey: id + "/" + step}
		// The implementations heartbeat, so they run in an activity
		// context: Temporal's test environment, without a server.
		env := activitytest.New(nil)
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: action})
		res, err := activitytest.Run[activities.ActionResult](env, action, in)
		if err != nil {
			return res, fmt.Errorf("%s: %w", action, err)
		}
		return res, nil
	}
	if _, err := call(pv.ResolveAsset, activities.PVEResolveAsset, "resolve", map[string]string{"asset": asset(i)}); err != nil {
		return err
	}
	if _, err := call(pv.Isolate, activities.PVEIsolate, "isolate", map[string]string{"asset": asset(i), "method": "firewall",
		"allow": "10.10.0.0/24", "reason": "incident " + id}); err != nil {
		return err
	}
	if _, err := call(pv.Snapshot, activities.PVESnapshot, "snapshot", map[string]string{"asset": asset(i), "name": "ir-" + id}); err != nil {
		return err
	}
	u, err := call(kc.ResolveUser, activities.KCResolveUser, "kc_user", map[string]string{"realm": keycloak.Realm, "username": benchUser(i)})
	if err != nil {
		return err
	}
	_, err = call(kc.LogoutUser, activities.KCLogoutUser, "revoke_sessions", map[string]string{"realm": keycloak.Realm, "user_id": u.Outputs["user_id"]})
	return err
}

// withDefaults completes params with the catalog's defaults, as the
// workflow does before it schedules an action.
func withDefaults(action string, params map[string]string) map[string]string {
	a, err := activities.Lookup(action)
	if err != nil {
		return params
	}
	out := make(map[string]string, len(a.Params))
	for _, p := range a.Params {
		if p.Default != "" {
			out[p.Name] = p.Default
		}
	}
	for k, v := range params {
		out[k] = v
	}
	return out
}

// ttcAlert is the detector's alert about container i, naming the account
// seen in it.
func ttcAlert(i int) genericAlert {
	return genericAlert{Source: "runtime-sensor", Rule: "Terminal shell in container", Severity: "critical", Asset: asset(i),
		Summary: "shell spawned in " + asset(i), Labels: map[string]string{"username": benchUser(i), "realm": keycloak.Realm},
		ObservedAt: time.Now().UTC().Format(time.RFC3339Nano)}
}

// runPlatform posts one alert per incident to the intake and waits for
// the platform to contain each.
func (r *rig) runPlatform(tb testing.TB, p ttcParams, ir *intakeRig) []time.Duration {
	tb.Helper()
	// The shipped rules must send these alerts to container-compromise.
	a := ttcAlert(0)
	in := route.Input{Source: a.Source, Rule: a.Rule, Severity: a.Severity, Labels: a.Labels, Asset: a.Asset}
	if d := ir.Service.Rules.Route(in); d.Playbook != "container-compromise" {
		tb.Fatalf("the alert routes to %q, want container-compromise", d.Playbook)
	}
	w := newContainWatch(r.PVE, r.Keycloak, p.Incidents)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, tb)
	hc := &http.Client{Timeout: 30 * time.Second}
	pace(p.Incidents, p.Interval, func(i int) {
		body, err := json.Marshal(ttcAlert(i))
		if err != nil {
			tb.Error(err)
			return
		}
		w.begin(i)
		if err := post(hc, ir.URL, body); err != nil {
			tb.Errorf("alert %d: %v", i, err)
		}
	})
	took := w.wait(tb, p.Timeout, func(i int) string { return r.describe(workflowID(i)) })
	tb.Logf("workflow tasks before the isolation is scheduled (over the incidents): %s", r.taskHolds(tb, p.Incidents))
	w.mu.Lock()
	byIncident := slices.Clone(w.took)
	w.mu.Unlock()
	tb.Logf("where the platform's time went (p50 over the incidents): %s", r.breakdown(tb, p.Incidents, w.start, byIncident))
	if path := os.Getenv("IRU_BENCH_HISTORY"); path != "" {
		r.writeHistory(tb, path, p.Incidents/2, w.start[p.Incidents/2])
	}
	r.terminateAll(tb, p.Incidents)
	return took
}

// workflowID is the incident workflow of container i's alert (the shipped
// rules correlate by playbook and asset).
func workflowID(i int) string {
	return workflows.IncidentWorkflowID("container-compromise:" + asset(i))
}

// describe renders an incident's steps, for a failure message.
func (r *rig) describe(wfID string) string {
	st, err := testplatform.Status(r.Client, wfID)
	if err != nil {
		return fmt.Sprintf("status of %s: %v", wfID, err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "state %s;", st.State)
	for _, s := range st.Steps {
		fmt.Fprintf(&b, " %s=%s", s.ID, s.Status)
		if s.Error != "" {
			fmt.Fprintf(&b, "(%s)", s.Error)
		}
	}
	return b.String()
}

// containmentSteps are the steps of container-compromise up to
// containment, in order.
var containmentSteps = []string{"resolve", "kc_user", "notify_opened", "isolate", "snapshot", "revoke_sessions"}

// breakdown renders the median time from the alert's POST to the
// incident's opening, and each containment step's median wait and run
// time, from the incidents' status as the workflow recorded it: a
// detection step waits from the opening, a containment step from the end
// of the last detection step. It ends with the recorded time to contain
// (when the containing actions took effect) and the containment phase's
// duration, each from the opening. Then, for the tail: the p99 of the
// time from the POST to the opening (the intake's share: spool, forwarder,
// the start of the workflow), and the slowest incidents' (took: each
// incident's time to contain as the lab saw it) share of it.
func (r *rig) breakdown(tb testing.TB, n int, posted []time.Time, took []time.Duration) string {
	tb.Helper()
	open := make([]time.Duration, 0, n)
	openOf := map[int]time.Duration{}
	wait := map[string][]time.Duration{}
	run := map[string][]time.Duration{}
	var contained, phase []time.Duration
	for i := range n {
		st, err := testplatform.Status(r.Client, workflowID(i))
		if err != nil {
			tb.Logf("status of %s: %v", workflowID(i), err)
			continue
		}
		open = append(open, st.OpenedAt.Sub(posted[i]))
		openOf[i] = st.OpenedAt.Sub(posted[i])
		detected := st.OpenedAt
		for _, s := range st.Steps {
			if s.Phase == "detection" && s.FinishedAt.After(detected) {
				detected = s.FinishedAt
			}
		}
		for _, s := range st.Steps {
			if !slices.Contains(containmentSteps, s.ID) || s.StartedAt.IsZero() || s.FinishedAt.IsZero() {
				continue
			}
			from := detected
			if s.Phase == "detection" {
				from = st.OpenedAt
			}
			wait[s.ID] = append(wait[s.ID], s.StartedAt.Sub(from))
			run[s.ID] = append(run[s.ID], s.FinishedAt.Sub(s.StartedAt))
		}
		if m := st.Metrics; !m.ContainedAt.IsZero() {
			contained = append(contained, m.TimeToContain)
			phase = append(phase, m.ContainmentPhaseDoneAt.Sub(st.OpenedAt))
		}
	}
	med := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return percentile(d, 50).Round(time.Millisecond)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST to opened %s", med(open))
	for _, id := range containmentSteps {
		fmt.Fprintf(&b, "; %s wait %s run %s", id, med(wait[id]), med(run[id]))
	}
	fmt.Fprintf(&b, "; recorded time to contain %s, containment phase done %s", med(contained), med(phase))
	slices.Sort(open)
	fmt.Fprintf(&b, "; POST to opened p99 %s", percentile(open, 99).Round(time.Millisecond))
	slowest := make([]int, 0, len(took))
	for i := range took {
		slowest = append(slowest, i)
	}
	slices.SortFunc(slowest, func(x, y int) int { return int(took[y] - took[x]) })
	for _, i := range slowest[:min(len(slowest), 3)] {
		if o, ok := openOf[i]; ok {
			fmt.Fprintf(&b, "; incident %d contained %s after its POST, opened %s after it", i, took[i].Round(time.Millisecond), o.Round(time.Millisecond))
		}
	}
	return b.String()
}

// taskHolds renders, from each incident's history up to the command that
// schedules pve.isolate: the p50 and p99 of the time from the workflow's
// start to that command, of the time its workflow tasks were held open
// (started to completed: the local activities they wait for, such as
// ledger appends and the playbook's resolution, and the worker's own
// work), and the median count of workflow tasks and local-activity
// markers before it.
func (r *rig) taskHolds(tb testing.TB, n int) string {
	tb.Helper()
	var toIsolate, held []time.Duration
	var tasks, markers []int
	for i := range n {
		it := r.Client.GetWorkflowHistory(context.Background(), workflowID(i), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var start, taskStarted time.Time
		var hold time.Duration
		nt, nm := 0, 0
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				tb.Errorf("history of %s: %v", workflowID(i), err)
				return ""
			}
			at := e.GetEventTime().AsTime()
			switch e.GetEventType() {
			case enums.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
				start = at
			case enums.EVENT_TYPE_WORKFLOW_TASK_STARTED:
				taskStarted = at
			case enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				hold += at.Sub(taskStarted)
				nt++
			case enums.EVENT_TYPE_MARKER_RECORDED:
				if e.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
					nm++
				}
			}
			if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == activities.PVEIsolate {
				toIsolate, held = append(toIsolate, at.Sub(start)), append(held, hold)
				tasks, markers = append(tasks, nt), append(markers, nm)
				break
			}
		}
	}
	slices.Sort(toIsolate)
	slices.Sort(held)
	slices.Sort(tasks)
	slices.Sort(markers)
	if len(tasks) == 0 {
		return "no incident scheduled pve.isolate"
	}
	r99 := func(d []time.Duration, q float64) time.Duration { return percentile(d, q).Round(time.Millisecond) }
	return fmt.Sprintf("start to isolate scheduled p50 %s p99 %s; tasks held open p50 %s p99 %s (sum per incident); %d workflow tasks, %d local-activity markers (median)",
		r99(toIsolate, 50), r99(toIsolate, 99), r99(held, 50), r99(held, 99), tasks[len(tasks)/2], markers[len(markers)/2])
}

// writeHistory writes to path the first events of incident i's history,
// each with its time from the alert's POST at posted: where the time went
// between the workflow tasks, activities and local activities (markers).
// BenchmarkTimeToContain writes the middle incident's history there when
// IRU_BENCH_HISTORY names a file.
func (r *rig) writeHistory(tb testing.TB, path string, i int, posted time.Time) {
	tb.Helper()
	it := r.Client.GetWorkflowHistory(context.Background(), workflowID(i), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var b bytes.Buffer
	for n := 0; n < 120 && it.HasNext(); n++ {
		e, err := it.Next()
		if err != nil {
			tb.Errorf("history of %s: %v", workflowID(i), err)
			return
		}
		what := ""
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			what = a.GetActivityType().GetName()
		}
		if a := e.GetMarkerRecordedEventAttributes(); a != nil {
			what = a.GetMarkerName()
		}
		fmt.Fprintf(&b, "%4d %9.1f ms  %s %s\n", e.GetEventId(), float64(e.GetEventTime().AsTime().Sub(posted).Microseconds())/1000, e.GetEventType(), what)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		tb.Errorf("write history: %v", err)
	}
}

// terminateAll ends the benchmark's incidents (they wait for a lead's
// approval of the shutdown) so the worker stops idle.
func (r *rig) terminateAll(tb testing.TB, n int) {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = workflowID(i)
	}
	r.terminate(tb, "benchmark done", ids)
}

// post sends one alert with the detector's API key and expects 202.
func post(hc *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+benchKey)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post alert: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("post alert: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
