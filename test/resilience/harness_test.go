//go:build integration

package resilience

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/freeport"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// randomSecret returns a fresh random secret of n bytes, hex encoded.
func randomSecret(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// envValue returns the value of key in KEY=VALUE lines (the last one wins,
// as for a process environment).
func envValue(t *testing.T, env []string, key string) string {
	t.Helper()
	v, found := "", false
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v, found = val, true
		}
	}
	if !found || v == "" {
		t.Fatalf("%s is not set in the platform environment", key)
	}
	return v
}

// platformSecrets are the secrets of a platform's configuration that must
// never appear in a log, an error message or a history.
func platformSecrets(t *testing.T, env []string) map[string]string {
	t.Helper()
	return map[string]string{
		"HSM PIN":                envValue(t, env, "IRU_HSM_PIN"),
		"PVE token secret":       envValue(t, env, "IRU_PVE_TOKEN_SECRET"),
		"Keycloak client secret": envValue(t, env, "IRU_KEYCLOAK_CLIENT_SECRET"),
		"codec token":            envValue(t, env, "IRU_CODEC_TOKEN"),
	}
}

// assertNoSecrets fails when text (named what) contains one of secrets.
func assertNoSecrets(t *testing.T, what, text string, secrets map[string]string) {
	t.Helper()
	if strings.TrimSpace(text) == "" {
		t.Errorf("%s: nothing was captured, so nothing was checked", what)
		return
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("secret %q is empty: the check would prove nothing", name)
		}
		if i := strings.Index(text, s); i >= 0 {
			lo, hi := max(0, i-120), min(len(text), i+len(s)+40)
			t.Errorf("%s contains the %s in clear: …%s…", what, name, strings.ReplaceAll(text[lo:hi], s, "<"+name+">"))
		}
	}
}

// status queries an incident's status, giving up after d (a query waits for
// a worker; while the worker is down it would wait for ever).
func status(c client.Client, wfID string, d time.Duration) (workflows.IncidentStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var st workflows.IncidentStatus
	v, err := c.QueryWorkflow(ctx, wfID, "", workflows.StatusQuery)
	if err != nil {
		return st, fmt.Errorf("query %s: %w", wfID, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decode status of %s: %w", wfID, err)
	}
	return st, nil
}

// decide sends an approve or deny Update, giving up after d.
func decide(c client.Client, wfID, update, step string, who workflows.Approver, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, err := testplatform.Statement(c, wfID, decision.Kind(update), step, who, "resilience test")
	if err != nil {
		return fmt.Errorf("%s %s of %s: sign: %w", update, step, wfID, err)
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: wfID, UpdateName: update, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.DecisionInput{StepID: step, Approver: who, Reason: "resilience test", Statement: s}},
	})
	if err != nil {
		return fmt.Errorf("%s %s of %s: %w", update, step, wfID, err)
	}
	var res workflows.DecisionResult
	if err := h.Get(ctx, &res); err != nil {
		return fmt.Errorf("%s %s of %s: %w", update, step, wfID, err)
	}
	return nil
}

// approveLoop approves every step of wfID that waits for approval, as Bob
// and then Carol (two distinct leads for a quorum of 2), until stop is
// closed.
func approveLoop(c client.Client, wfID string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		st, err := status(c, wfID, 3*time.Second)
		if err != nil || st.State != workflows.StateOpen {
			continue
		}
		for _, s := range st.Steps {
			if s.Status != workflows.StepWaitingApproval || s.Approval == nil {
				continue
			}
			who := testplatform.Bob
			if len(s.Approval.Approvals) == 1 {
				who = testplatform.Carol
			}
			_ = decide(c, wfID, workflows.ApproveUpdate, s.ID, who, 10*time.Second)
		}
	}
}

// waitResult waits up to d for an incident's result. A timeout fails the
// test with the incident's last status, so no incident hangs silently.
func waitResult(t *testing.T, c client.Client, wfID string, d time.Duration) workflows.IncidentResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var res workflows.IncidentResult
	if err := c.GetWorkflow(ctx, wfID, "").Get(ctx, &res); err != nil {
		st, qerr := status(c, wfID, 5*time.Second)
		b, _ := json.MarshalIndent(st.Steps, "", " ")
		t.Fatalf("incident %s: no result within %s: %v\nlast status (%v): state %s phase %s reason %q\nsteps %s", wfID, d, err, qerr, st.State, st.Phase, st.Reason, b)
	}
	return res
}

// incidentInput is a container-compromise incident opened by a Falco alert
// on asset; key must be unique to the test run.
func incidentInput(id, key, asset string, labels map[string]string) workflows.IncidentInput {
	now := time.Now().UTC()
	return workflows.IncidentInput{
		IncidentID: id, Key: key, Asset: asset, Severity: "critical",
		Playbook: "container-compromise", OpenedBy: "system:intake",
		Alerts: []workflows.Alert{{ID: id + "-a1", Fingerprint: "falco:shell:" + key, Source: "falco", Rule: "Terminal shell in container",
			Severity: "critical", Asset: asset, Summary: "shell spawned in " + asset, Labels: labels,
			ObservedAt: now.Add(-time.Second), ReceivedAt: now}},
	}
}

// startIncident starts in on task queue tq and returns its workflow id.
func startIncident(t *testing.T, c client.Client, tq string, in workflows.IncidentInput) string {
	t.Helper()
	wfID := workflows.IncidentWorkflowID(in.Key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: tq}, workflows.IncidentWorkflow, in); err != nil {
		t.Fatalf("start incident %s: %v", in.IncidentID, err)
	}
	return wfID
}

// runTag is unique per test run, so incident keys never meet an earlier
// run's workflows on a shared server.
func runTag(t *testing.T) string { return strings.ToLower(randomSecret(t, 3)) }

func container(t *testing.T, st pve.StateSnapshot, vmid int) pve.ContainerSnapshot {
	t.Helper()
	for _, ct := range st.Containers {
		if ct.VMID == vmid {
			return ct
		}
	}
	t.Fatalf("no container %d in the lab", vmid)
	return pve.ContainerSnapshot{}
}

func backupsOf(st pve.StateSnapshot, vmid int) int {
	n := 0
	for _, b := range st.Backups {
		if b.VMID == vmid {
			n++
		}
	}
	return n
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// isolationOnce checks, while an incident holds a container isolated, that
// each effect of containment exists exactly once: the evidence snapshot
// named for the incident, the quarantine record and tag, and the allow
// rules commented iru:<incident> (one in, one out for the one allowed
// network), and that the container is isolated.
func isolationOnce(t *testing.T, l *pve.Server, vmid int, incidentID string) {
	t.Helper()
	ct := container(t, l.State(), vmid)
	want := pveact.SnapshotName("ir-"+incidentID, incidentID)
	named, ir := 0, 0
	for _, s := range ct.Snapshots {
		if s.Name == want {
			named++
		}
		if strings.HasPrefix(s.Name, "ir-") {
			ir++
		}
	}
	if named != 1 || ir != 1 {
		t.Errorf("%s (ct %d): %d snapshots named %s and %d ir- snapshots, want exactly 1 of each: %s", incidentID, vmid, named, want, ir, mustJSON(ct.Snapshots))
	}
	if n := strings.Count(ct.Config["description"], "iru-quarantine:v1:"); n != 1 {
		t.Errorf("%s (ct %d): %d quarantine records in the description, want 1", incidentID, vmid, n)
	}
	tags := strings.Split(ct.Config["tags"], ";")
	if n := countOf(tags, pveact.QuarantineTag); n != 1 {
		t.Errorf("%s (ct %d): tag %s %d times in %q, want once", incidentID, vmid, pveact.QuarantineTag, n, ct.Config["tags"])
	}
	// The isolation is one rule at position 0 sending the container's
	// traffic through the incident's security group (pve.isolate).
	marker := "iru:" + incidentID
	var group []int
	for pos, r := range ct.Firewall.Rules {
		if r["comment"] == marker {
			group = append(group, pos)
		}
	}
	if len(group) != 1 || group[0] != 0 || ct.Firewall.Rules[0]["type"] != "group" || !strings.HasPrefix(ct.Firewall.Rules[0]["action"], "iru-q-") {
		t.Errorf("%s (ct %d): rules commented %s at %v, want exactly one security-group rule (iru-q-…) at position 0: %s", incidentID, vmid, marker, group, mustJSON(ct.Firewall.Rules))
	}
	iso, err := l.EffectiveIsolation(vmid)
	if err != nil {
		t.Fatal(err)
	}
	if !iso.Isolated || !iso.FirewallIsolated {
		t.Errorf("%s (ct %d): not isolated while containment holds: %+v", incidentID, vmid, iso)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// restored checks that a container is back as it was before the incident:
// running, and its network as before (see networkRestored).
func restored(t *testing.T, l *pve.Server, before pve.ContainerSnapshot) {
	t.Helper()
	if after := container(t, l.State(), before.VMID); after.Status != "running" {
		t.Errorf("ct %d is %s after recovery, want running", before.VMID, after.Status)
	}
	networkRestored(t, l, before)
}

// networkRestored checks that nothing of an isolation remains on a
// container: not isolated, firewall identical to before, no quarantine tag
// or record.
func networkRestored(t *testing.T, l *pve.Server, before pve.ContainerSnapshot) {
	t.Helper()
	after := container(t, l.State(), before.VMID)
	iso, err := l.EffectiveIsolation(before.VMID)
	if err != nil {
		t.Fatal(err)
	}
	if iso.Isolated {
		t.Errorf("ct %d still isolated after recovery: %+v", before.VMID, iso)
	}
	if mustJSON(before.Firewall) != mustJSON(after.Firewall) {
		t.Errorf("ct %d firewall not restored:\nbefore %s\nafter  %s", before.VMID, mustJSON(before.Firewall), mustJSON(after.Firewall))
	}
	if strings.Contains(after.Config["tags"], pveact.QuarantineTag) || strings.Contains(after.Config["description"], "iru-quarantine:") {
		t.Errorf("ct %d keeps quarantine marks: tags %q description %q", before.VMID, after.Config["tags"], after.Config["description"])
	}
}

// ledgerIntact verifies an incident's chain with the HSM key: it verifies,
// entries are 1..N with no gap and no duplicate, the last checkpoint
// covers N, N is the last sequence number the workflow issued, and no
// step outcome was recorded twice.
func ledgerIntact(t *testing.T, p *testplatform.Platform, incidentID string, issued int64) {
	t.Helper()
	ctx := context.Background()
	l := p.Host.Stores().Ledger
	rep, err := l.Verify(ctx, incidentID, p.Host.Stores().Signer)
	if err != nil || !rep.OK() {
		t.Errorf("%s: ledger does not verify: %+v %v", incidentID, rep, err)
		return
	}
	if rep.HeadSeq != issued || int64(rep.Entries) != issued || rep.CheckpointSeq != issued || rep.Checkpoints == 0 {
		t.Errorf("%s: ledger has %d entries up to %d, checkpoint at %d (%d checkpoints); the workflow issued %d", incidentID, rep.Entries, rep.HeadSeq, rep.CheckpointSeq, rep.Checkpoints, issued)
	}
	var want int64 = 1
	keys, outcomes := map[string]bool{}, map[string]int64{}
	err = l.Store().Entries(ctx, incidentID, func(e ledger.Entry) error {
		if e.Seq != want {
			return fmt.Errorf("entry %d where %d was expected", e.Seq, want)
		}
		want++
		if keys[e.IdempotencyKey] {
			return fmt.Errorf("idempotency key %s used twice", e.IdempotencyKey)
		}
		keys[e.IdempotencyKey] = true
		if strings.HasPrefix(e.Action, "step:") && e.Outcome.Status != ledger.StatusFailed {
			k := e.Action + " " + e.Target + " " + string(e.Outcome.Status)
			if prev, dup := outcomes[k]; dup {
				return fmt.Errorf("step outcome %q recorded twice (entries %d and %d)", k, prev, e.Seq)
			}
			outcomes[k] = e.Seq
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: ledger entries: %v", incidentID, err)
	}
}

// eventually polls cond every 100 ms until it holds or d passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildWorker builds the worker binary (as `make build` does, without
// version flags) into the test's temporary folder.
func buildWorker(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./worker: %v\n%s", err, out)
	}
	return filepath.Join(dir, "worker")
}

// workerProc is the worker binary run as a child process, killed and
// restarted by the test. Logs of every run go to one buffer.
type workerProc struct {
	t    *testing.T
	bin  string
	env  []string
	addr string
	Logs testenv.LockedBuffer

	cmd  *exec.Cmd
	done chan struct{}
	// Starts counts the runs.
	Starts int
}

func newWorkerProc(t *testing.T, bin string, env []string) *workerProc {
	t.Helper()
	port, err := freeport.TCP("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	w := &workerProc{t: t, bin: bin, addr: addr,
		env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}, append(env, "IRU_WORKER_HTTP_ADDR="+addr)...)}
	t.Cleanup(w.Kill)
	return w
}

// Start runs the binary and waits until its /healthz answers 200 (it polls
// the task queue then).
func (w *workerProc) Start() {
	w.t.Helper()
	cmd := exec.Command(w.bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = w.env, &w.Logs, &w.Logs
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("start worker: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	w.cmd, w.done = cmd, done
	w.Starts++
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			w.t.Fatalf("worker exited during start; logs:\n%s", w.Logs.String())
		default:
		}
		resp, err := http.Get("http://" + w.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("worker not healthy within 30s; logs:\n%s", w.Logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL (no graceful stop: a crash) and waits for the exit.
func (w *workerProc) Kill() {
	if w.cmd == nil {
		return
	}
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		w.t.Errorf("kill worker: %v", err)
	}
	<-w.done
	w.cmd = nil
}
