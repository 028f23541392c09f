//go:build integration

package resilience

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/intake"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/objectstore"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/secretsink"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/sharedstate/sharedtest"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// Scale-out storm size: IRU_SCALEOUT_ALERTS alerts over IRU_SCALEOUT_ASSETS
// containers (at most the first 50 of testdata/inventory50.yaml; its two
// bystanders get no alert and must stay untouched). The defaults are
// 1,000 alerts over 50 containers.
const (
	scaleOutAlertsVar = "IRU_SCALEOUT_ALERTS"
	scaleOutAssetsVar = "IRU_SCALEOUT_ASSETS"
	scaleOutInventory = "testdata/inventory50.yaml"
	scaleOutFleet     = 50
)

func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		t.Fatalf("%s=%q: want an integer in [%d, %d]", name, v, lo, hi)
	}
	return n
}

// buildBinaries builds the worker and the starter (as `make build` does,
// without version flags) into one temporary folder.
func buildBinaries(t *testing.T) (worker, starter string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./worker", "./starter")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./worker ./starter: %v\n%s", err, out)
	}
	return filepath.Join(dir, "worker"), filepath.Join(dir, "starter")
}

// apiProc is `starter serve` run as a child process: detector intake with
// its own spool, responder API, readiness on the internal listener.
type apiProc struct {
	URL  string
	Logs testenv.LockedBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// startAPI runs `starter serve` with env and waits until /readyz answers
// 200 (Temporal reachable).
func startAPI(t *testing.T, bin string, env []string) *apiProc {
	t.Helper()
	addr, internal := freeLoopback(t), freeLoopback(t)
	a := &apiProc{URL: "http://" + addr, done: make(chan struct{})}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()},
		append(env, "IRU_API_ADDR="+addr, "IRU_API_INTERNAL_ADDR="+internal)...)
	cmd.Stdout, cmd.Stderr = &a.Logs, &a.Logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start starter serve: %v", err)
	}
	a.cmd = cmd
	go func() { _ = cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-a.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-a.done:
			t.Fatalf("starter serve exited during start; logs:\n%s", a.Logs.String())
		default:
		}
		if resp, err := http.Get("http://" + internal + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("starter serve not ready within 60s; logs:\n%s", a.Logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	port, err := freeport.TCP("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// intakeFile writes an intake configuration with its own spool; the
// detectors are those of the shared store.
func intakeFile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := intake.Config{SpoolDir: filepath.Join(dir, "spool"), TaskQueue: workflows.TaskQueue}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "intake.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestScaleOut runs the platform scaled out on the current target (run it
// with IRU_TEST_TARGET=cluster for the real cluster): two worker
// processes (the worker binary) and two API servers (`starter serve`,
// each with its own intake spool) share the task queue, the ledger, the
// lab and the shared state (IRU_SHARED_STATE_DSN: detectors, replay guard,
// failed-authentication counters in PostgreSQL). Before the storm, an
// HMAC-signed alert accepted by API server 1 and replayed to API server 2
// is refused there, and keys.rotate_intake_keys, run by a worker, rotates
// the detector's key in the shared store: API server 2 accepts the new key
// within seconds, and the storm uses it. Detectors post a storm of IRU_SCALEOUT_ALERTS alerts (1,000)
// about IRU_SCALEOUT_ASSETS containers (50) of a 50-container lab
// inventory, alternately to the two API servers, 16 at a time; a third of
// the way through, once worker 1's SDK metrics show it has run workflow
// tasks and activities (and, when seen within 20 s, while it holds an
// activity), it is killed with SIGKILL and stays dead: worker 2 must take
// over its work.
//
// It asserts: every alert is accepted (202) and every accepted alert id is
// listed by its asset's incident, which counts exactly the accepted
// alerts; one incident per asset; while containment holds (at the first
// approval) each container has exactly one evidence snapshot, quarantine
// record, tag and pair of allow rules; every incident completes
// (approved through testplatform.Decide) resolved; afterwards the lab's
// task list shows exactly one snapshot task per container (recovery rolls
// the container back, so the snapshot itself is gone by then), each has
// one forensic backup more and runs un-isolated with its firewall as before,
// and the other containers of the inventory are untouched; every
// incident's ledger verifies 1..N with no gap or duplicate and no step
// outcome recorded twice.
func TestScaleOut(t *testing.T) {
	began := time.Now()
	nAlerts := envInt(t, scaleOutAlertsVar, 1000, 2, 100000)
	nAssets := envInt(t, scaleOutAssetsVar, 50, 1, scaleOutFleet)
	if nAlerts < nAssets {
		t.Fatalf("%s=%d is fewer than %s=%d", scaleOutAlertsVar, nAlerts, scaleOutAssetsVar, nAssets)
	}
	workerBin, starterBin := buildBinaries(t)
	t.Logf("%5.1fs binaries built", time.Since(began).Seconds())

	p := testplatform.New(t, testplatform.Options{NoWorker: true, PVEInventory: scaleOutInventory,
		Env: []string{"IRU_CODEC_TOKEN=" + randomSecret(t, 16), "IRU_PLAYBOOKS_DIR=" + crashPlaybooks(t)}})
	t.Logf("%5.1fs platform on %s", time.Since(began).Seconds(), p.Target.Name())
	// The shared state: the detectors (an API-key one, a signing one) in
	// PostgreSQL, which the workers' rotation writes and the API servers read.
	scfg := sharedtest.Config(t)
	shared := sharedtest.Open(t, scfg)
	firstKey, err := intakeauth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signerSecret := randomSecret(t, 32)
	err = shared.Update(context.Background(), func(f *detectorsfile.File) (bool, error) {
		f.Detectors = []intakeauth.Detector{
			{Name: detectorName, Format: "generic", APIKeys: []intakeauth.APIKey{{ID: "k1", SHA256: intakeauth.HashKey("k1", firstKey)}}},
			{Name: signerName, Format: "generic", HMACSecrets: []intakeauth.HMACSecret{{ID: "h1", Secret: signerSecret}}},
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sharedEnv := []string{"IRU_SHARED_STATE_DSN=" + scfg.DSN, "IRU_SHARED_STATE_SCHEMA=" + scfg.Schema}
	// Evidence on MinIO with Object Lock, and the payload keys in the shared
	// database (the platform's key folder imported first, so the test's own
	// client reads what the workers and API servers write).
	sharedEnv = append(sharedEnv, evidenceOnMinIO(t, shared, p.Env)...)
	workerEnv := append(slices.Clone(p.Env), sharedEnv...)
	workers := []*workerProc{newWorkerProc(t, workerBin, workerEnv), newWorkerProc(t, workerBin, workerEnv)}
	for _, w := range workers {
		w.Start()
	}
	// The API servers act as the API server on the cluster (their own
	// certificate and token), with the intake's limits opened for a load
	// test from one loopback source.
	apiEnv := append(append([]string{}, p.Env...), p.Target.Env(testenv.RoleAPI)...)
	apiEnv = append(apiEnv, "IRU_INTAKE_SOURCE_RATE=1000000", "IRU_INTAKE_SOURCE_BURST=1000000", "IRU_INTAKE_SOURCE_CONCURRENCY=1000",
		"IRU_INTAKE_DETECTOR_RATE=1000000", "IRU_INTAKE_DETECTOR_BURST=1000000", "IRU_INTAKE_DETECTOR_CONCURRENCY=1000")
	apiEnv = append(apiEnv, sharedEnv...)
	apis := []*apiProc{
		startAPI(t, starterBin, append(slices.Clone(apiEnv), "IRU_INTAKE_CONFIG="+intakeFile(t))),
		startAPI(t, starterBin, append(slices.Clone(apiEnv), "IRU_INTAKE_CONFIG="+intakeFile(t))),
	}
	t.Logf("%5.1fs 2 workers and 2 API servers up", time.Since(began).Seconds())

	before := p.Lab.PVE.State()
	tag := runTag(t)
	assetOf := func(j int) string { return asset(j % nAssets) }
	var mu sync.Mutex
	accepted := map[string][]string{} // asset → accepted alert ids
	client := &http.Client{Timeout: 30 * time.Second}

	// A signed alert accepted by API server 1, replayed to API server 2:
	// refused there (the replay guard is shared), nothing more accepted.
	signed := genericAlert(assetOf(0), "scaleout-"+tag+"-signed", "signed alert", nil)
	ts, sig := intakeauth.SignatureHeader([]byte(signerSecret), time.Now(), signed)
	code, ids, err := postSigned(client, apis[0].URL, signed, ts, sig)
	if err != nil || code != http.StatusAccepted || len(ids) != 1 {
		t.Fatalf("signed alert at API server 1: %d %v %v", code, ids, err)
	}
	accepted[assetOf(0)] = append(accepted[assetOf(0)], ids...)
	if code, _, _ := postSigned(client, apis[1].URL, signed, ts, sig); code != http.StatusUnauthorized {
		t.Fatalf("the signed alert replayed to API server 2 answered %d, want 401", code)
	}
	// The detector's key rotated by keys.rotate_intake_keys on a worker,
	// in the shared store; API server 2 accepts the new key within seconds.
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	rot, err := schedules.RunIntakeKeyRotation(rctx, p.Client, workflows.TaskQueue, workflows.RotateIntakeKeysInput{Source: detectorName, Reason: "scale-out test"})
	rcancel()
	if err != nil || len(rot.Result.Rotated) != 1 {
		t.Fatalf("rotate the intake key: %+v %v", rot, err)
	}
	rotatedAt := time.Now()
	newKey, err := secretsink.File{Dir: envValue(t, p.Env, "IRU_SECRETS_DIR")}.Read(rot.Result.Rotated[0].SecretRef)
	if err != nil {
		t.Fatal(err)
	}
	key := string(newKey)
	for {
		code, ids, _ := postAlert(client, apis[1].URL, key, genericAlert(assetOf(1), "scaleout-"+tag+"-rotated", "first alert with the rotated key", nil))
		if code == http.StatusAccepted {
			accepted[assetOf(1)] = append(accepted[assetOf(1)], ids...)
			break
		}
		if time.Since(rotatedAt) > 10*time.Second {
			t.Fatalf("API server 2 still refuses the rotated key %s after the rotation (%d)", time.Since(rotatedAt), code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%5.1fs signed replay refused across API servers; rotated key accepted at API server 2 %s after the rotation",
		time.Since(began).Seconds(), time.Since(rotatedAt).Round(time.Millisecond))
	perAPI := make([]atomic.Int64, len(apis))
	var posted atomic.Int64
	killAt := nAlerts / 3
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for j := range jobs {
				a := apis[j%len(apis)]
				body := genericAlert(assetOf(j), fmt.Sprintf("scaleout-%s-%d", tag, j), "storm alert", nil)
				code, ids, err := postAlert(client, a.URL, key, body)
				if err != nil || code != http.StatusAccepted || len(ids) != 1 {
					t.Errorf("alert %d to API server %d: %d %v %v", j, j%len(apis), code, ids, err)
					continue
				}
				perAPI[j%len(apis)].Add(1)
				mu.Lock()
				accepted[assetOf(j)] = append(accepted[assetOf(j)], ids...)
				mu.Unlock()
				posted.Add(1)
			}
		})
	}
	// A third of the way through, once worker 1 has run workflow tasks and
	// activities of the storm's incidents (its SDK metrics say so; the
	// storm pauses meanwhile), it is killed: work in its hands is lost and
	// must be taken over by worker 2.
	stormStart := time.Now()
	var killedAt time.Time
	for j := range nAlerts {
		if j == killAt {
			var w workerLoad
			eventually(t, "worker 1 running workflow tasks and activities", 60*time.Second, func() bool {
				w = workerWork(t, workers[0].addr)
				return w.WorkflowTasks > 0 && w.Activities > 0
			})
			// Best effort: kill it while activities are in its hands.
			for deadline := time.Now().Add(20 * time.Second); w.ActivitySlots == 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				w = workerWork(t, workers[0].addr)
			}
			workers[0].Kill()
			killedAt = time.Now()
			t.Logf("%5.1fs worker 1 killed (SIGKILL) after %d of %d alerts were handed out, %s into the storm; it had run %d workflow tasks and %d activities, %.0f activities in flight",
				killedAt.Sub(began).Seconds(), j, nAlerts, killedAt.Sub(stormStart).Round(time.Millisecond), w.WorkflowTasks, w.Activities, w.ActivitySlots)
		}
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	stormDur := time.Since(stormStart)
	if t.Failed() {
		t.FailNow()
	}
	if killedAt.IsZero() || posted.Load() <= int64(killAt) {
		t.Fatalf("worker 1 was not killed during the storm (%d alerts accepted)", posted.Load())
	}
	t.Logf("%5.1fs storm over in %s: %d alerts accepted (%d and %d per API server)", time.Since(began).Seconds(),
		stormDur.Round(time.Millisecond), posted.Load(), perAPI[0].Load(), perAPI[1].Load())

	// Every accepted alert reaches its asset's incident (one per asset).
	c := p.Client
	wfIDs := map[string]string{} // asset → workflow id
	for i := range nAssets {
		a := asset(i)
		wfID := workflows.IncidentWorkflowID("container-compromise:" + a)
		wfIDs[a] = wfID
		want := slices.Sorted(slices.Values(accepted[a]))
		var st workflows.IncidentStatus
		eventually(t, "alerts of "+a+" in its incident", 3*time.Minute, func() bool {
			s, err := status(c, wfID, 5*time.Second)
			if err != nil {
				return false
			}
			st = s
			return st.AlertsReceived >= len(want)
		})
		var got []string
		for _, r := range st.Alerts {
			got = append(got, r.ID)
		}
		slices.Sort(got)
		if st.AlertsReceived != len(want) || !slices.Equal(got, want) {
			t.Errorf("%s: incident counts %d alerts and lists %d, %d were accepted", a, st.AlertsReceived, len(got), len(want))
		}
	}
	t.Logf("%5.1fs every accepted alert is in its incident", time.Since(began).Seconds())

	// Approve (two leads where a quorum of 2 is asked) until every incident
	// ends; at an incident's first approval its containment holds: count
	// its effects then.
	type incident struct {
		asset, wfID, id string
		vmid            int
		checked, done   bool
	}
	var incs []*incident
	for i := range nAssets {
		incs = append(incs, &incident{asset: asset(i), wfID: wfIDs[asset(i)], vmid: 1000 + i})
	}
	deadline := time.Now().Add(8 * time.Minute)
	for open := len(incs); open > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d incidents still open after 8 minutes", open)
		}
		open = 0
		for _, x := range incs {
			if x.done {
				continue
			}
			st, err := status(c, x.wfID, 5*time.Second)
			if err != nil {
				open++
				continue
			}
			x.id = st.IncidentID
			if st.State != workflows.StateOpen {
				x.done = true
				continue
			}
			open++
			for _, s := range st.Steps {
				if s.Status != workflows.StepWaitingApproval || s.Approval == nil {
					continue
				}
				if !x.checked {
					isolationOnce(t, p.Lab.PVE, x.vmid, st.IncidentID)
					x.checked = true
				}
				who := testplatform.Bob
				if len(s.Approval.Approvals) == 1 {
					who = testplatform.Carol
				}
				if _, err := testplatform.Decide(c, x.wfID, workflows.ApproveUpdate, s.ID, who); err != nil {
					t.Logf("approve %s of %s as %s: %v", s.ID, x.asset, who.Username, err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%5.1fs all %d incidents ended", time.Since(began).Seconds(), len(incs))

	end := p.Lab.PVE.State()
	snapshotTasks := labTasks(t, p, "vzsnapshot")
	for _, x := range incs {
		res := waitResult(t, c, x.wfID, 30*time.Second)
		if res.State != workflows.StateResolved {
			t.Errorf("%s (%s) ended %s: %s", res.IncidentID, x.asset, res.State, res.Reason)
		}
		if res.AlertsReceived != len(accepted[x.asset]) {
			t.Errorf("%s (%s): result counts %d alerts, %d were accepted", res.IncidentID, x.asset, res.AlertsReceived, len(accepted[x.asset]))
		}
		if res.LedgerFailures != 0 {
			t.Errorf("%s: %d ledger appends failed for good", res.IncidentID, res.LedgerFailures)
		}
		if !x.checked {
			t.Errorf("%s never waited for an approval, so containment's effects were not counted", res.IncidentID)
		}
		ledgerIntact(t, p, res.IncidentID, res.LedgerSeq)
		if n := snapshotTasks[strconv.Itoa(x.vmid)]; n != 1 {
			t.Errorf("%s: the lab ran %d snapshot tasks on ct %d, want exactly 1 (the evidence snapshot)", res.IncidentID, n, x.vmid)
		}
		restored(t, p.Lab.PVE, container(t, before, x.vmid))
		if n := backupsOf(end, x.vmid) - backupsOf(before, x.vmid); n != 1 {
			t.Errorf("%s: %d forensic backups of ct %d, want exactly 1", res.IncidentID, n, x.vmid)
		}
	}
	// Every incident's evidence, written by either worker on MinIO, reads
	// back and verifies from a third process with a folder of its own, as
	// on another host: the custody logs are in the bucket too.
	otherHost := slices.DeleteFunc(append(slices.Clone(p.Env), sharedEnv...), func(kv string) bool { return strings.HasPrefix(kv, "IRU_EVIDENCE_DIR=") })
	locker := evidenceLocker(t, append(otherHost, "IRU_EVIDENCE_DIR="+t.TempDir()))
	objects := 0
	for _, x := range incs {
		rep, err := locker.Verify(context.Background(), x.id)
		if err != nil || len(rep.Problems) > 0 || rep.Objects == 0 {
			t.Errorf("%s: evidence on MinIO: %d objects, problems %+v, %v", x.id, rep.Objects, rep.Problems, err)
		}
		objects += rep.Objects
	}
	t.Logf("%d evidence objects on MinIO verified from a third process with its own folder", objects)
	// The rest of the fleet is untouched.
	for _, ct := range before.Containers {
		if ct.VMID-1000 < nAssets {
			continue
		}
		if mustJSON(ct) != mustJSON(container(t, end, ct.VMID)) {
			t.Errorf("ct %d, about which no alert was sent, changed", ct.VMID)
		}
	}
	for i, w := range workers {
		if w.cmd == nil && i != 0 {
			t.Errorf("worker %d is not running at the end", i+1)
		}
	}
	t.Logf("scenario took %s (%d alerts, %d assets, target %s)", time.Since(began).Round(time.Millisecond), nAlerts, nAssets, p.Target.Name())
}

// labTasks counts the PVE tasks of type typ that ended OK, per guest id,
// as the lab's cluster task list shows them.
func labTasks(t *testing.T, p *testplatform.Platform, typ string) map[string]int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.Lab.PVE.URL()+"/cluster/tasks", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+pve.LabResponderTokenID+"="+pve.LabResponderTokenSecret)
	resp, err := p.Lab.PVE.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("lab task list: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			Type, ID, Status string
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("lab task list: %d %v", resp.StatusCode, err)
	}
	out := map[string]int{}
	for _, tk := range body.Data {
		if tk.Type == typ && tk.Status == "OK" {
			out[tk.ID]++
		}
	}
	if len(body.Data) == 0 {
		t.Fatal("the lab lists no task at all: the count would prove nothing")
	}
	return out
}

// workerLoad is what a worker's SDK metrics say it has done and is doing.
type workerLoad struct {
	// WorkflowTasks and Activities count the tasks it ran (the counts of
	// their execution-latency histograms).
	WorkflowTasks, Activities uint64
	// ActivitySlots is how many activities it holds right now.
	ActivitySlots float64
}

// workerWork reads a worker's SDK metrics (zero when they cannot be read).
func workerWork(t *testing.T, addr string) workerLoad {
	t.Helper()
	var w workerLoad
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return w
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return w
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Errorf("worker metrics: %v", err)
		return w
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case strings.HasPrefix(name, "temporal_workflow_task_execution_latency"):
				w.WorkflowTasks += m.GetHistogram().GetSampleCount()
			case strings.HasPrefix(name, "temporal_activity_execution_latency"):
				w.Activities += m.GetHistogram().GetSampleCount()
			case name == "temporal_worker_task_slots_used":
				for _, l := range m.GetLabel() {
					if l.GetName() == "worker_type" && l.GetValue() == "ActivityWorker" {
						w.ActivitySlots += m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	return w
}

// asset names container i of testdata/inventory50.yaml (vmid 1000+i).
func asset(i int) string { return fmt.Sprintf("bench-%d", i) }

// signerName is the shared store's detector that signs its requests.
const signerName = "signer"

// postSigned posts body as the signing detector with the timestamp and
// signature headers; it returns the status and the accepted alert ids.
func postSigned(c *http.Client, base string, body []byte, ts, sig string) (int, []string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/alerts/"+signerName, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(intakeauth.HeaderTimestamp, ts)
	req.Header.Set(intakeauth.HeaderSignature, sig)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, nil, err
	}
	var r intake.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("decode 202 body %q: %w", raw, err)
	}
	return resp.StatusCode, r.IDs, nil
}

// evidenceOnMinIO starts the pinned MinIO with an Object Lock bucket and
// moves the platform's payload keys into the shared database; it returns
// the variables that point a worker or API server at both.
func evidenceOnMinIO(t *testing.T, shared *sharedstate.Store, env []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logf, err := os.Create(filepath.Join(t.TempDir(), "minio.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logf.Close() })
	ms, err := objectstore.Start(ctx, objectstore.Options{Dir: t.TempDir(), Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	folder, err := codec.NewFileKeyStore(envValue(t, env, "IRU_CODEC_KEY_DIR"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := folder.List()
	if err != nil || len(ks) == 0 {
		t.Fatalf("the platform's payload keys: %d, %v", len(ks), err)
	}
	for _, k := range ks {
		if err := shared.CodecKeys().Add(k); err != nil {
			t.Fatal(err)
		}
	}
	return append(ms.Env(), "IRU_CODEC_KEY_STORE=shared")
}

// evidenceLocker opens the evidence locker env configures, with its own
// HSM session, as another process would.
func evidenceLocker(t *testing.T, env []string) *evidence.Locker {
	t.Helper()
	var kcfg keys.Config
	var scfg stores.Config
	if err := config.LoadFrom(&kcfg, env); err != nil {
		t.Fatal(err)
	}
	if err := config.LoadFrom(&scfg, env); err != nil {
		t.Fatal(err)
	}
	km, err := keys.Open(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = km.Close() })
	st, err := stores.Open(context.Background(), scfg, km)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.Evidence
}
