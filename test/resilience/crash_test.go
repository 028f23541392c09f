//go:build integration

package resilience

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// crashPhases are the phases a crash must hit.
var crashPhases = []string{playbooks.PhaseContainment, playbooks.PhaseInvestigation, playbooks.PhaseRecovery}

// crashIncident is one incident of the crash test.
type crashIncident struct {
	asset  string
	vmid   int
	in     workflows.IncidentInput
	wfID   string
	before pve.ContainerSnapshot
	// checked: the containment effects were counted at the first approval.
	checked bool
}

// crash is one SIGKILL of the worker.
type crash struct {
	at time.Time
	// hit are the steps running at that moment, "incident/step (phase)".
	hit    []string
	phases []string
	// boundary says which ledger entry the crash followed.
	boundary string
}

// TestWorkerCrashAtActivityBoundaries runs container-compromise incidents on
// the worker BINARY and kills it with SIGKILL while long Proxmox actions
// run (each crash also loses whatever ledger appends and workflow tasks
// were in flight), restarting it at once. Crashes must hit containment
// (pve.snapshot), investigation (pve.backup / pve.collect_evidence) and
// recovery (pve.start). The incidents are staggered so that one crash
// usually catches all three: A runs up to its remediation approval; C
// starts then; B starts half way through C's snapshot, and A is approved
// then, so that A's start, B's snapshot and C's backup run together. When
// timing does not line up (a loaded machine), further crashes cover the
// phases still missing.
//
// The playbook is the shipped one with one change: short steps get a
// 15 s StartToClose timeout (crashPlaybooks). With the catalog's 2
// minutes, a short step lost in a crash (pve.isolate waits for the
// snapshot's lock, so one always runs during containment) would hold the
// incident for 2 minutes; long steps heartbeat and are retried after 30 s.
//
// Afterwards every incident is resolved; its ledger verifies with the HSM
// key, 1..N with no gap or duplicate and a checkpoint at N; while
// containment held, the lab had exactly one evidence snapshot, quarantine
// record, tag and pair of allow rules per incident; at the end each
// container runs un-isolated with its firewall as before and exactly one
// forensic backup more. The worker's logs hold no secret, and the
// histories on the server hold only ciphertext.
func TestWorkerCrashAtActivityBoundaries(t *testing.T) {
	began := time.Now()
	bin := buildWorker(t)
	t.Logf("worker binary built in %s", time.Since(began).Round(time.Millisecond))

	// Long actions take 4 s in the lab: wide enough windows to crash in.
	const long = 4 * time.Second
	p := testplatform.New(t, testplatform.Options{NoWorker: true,
		TaskDurations: map[string]time.Duration{"vzsnapshot": long, "vzdump": long, "vzstart": long},
		Env: []string{"IRU_CODEC_TOKEN=" + randomSecret(t, 16), "IRU_LOG_LEVEL=debug",
			"IRU_PLAYBOOKS_DIR=" + crashPlaybooks(t)}})
	w := newWorkerProc(t, bin, p.Env)
	w.Start()

	tag := runTag(t)
	stateBefore := p.Lab.PVE.State()
	incs := []*crashIncident{{asset: "api-gateway", vmid: 100}, {asset: "iru-services", vmid: 102}, {asset: "database", vmid: 103}}
	for i, x := range incs {
		labels := map[string]string{"health_url": p.Lab.HealthURL(x.asset)}
		if i == 0 {
			labels["username"], labels["realm"] = "jdoe", keycloak.Realm
		}
		x.in = incidentInput(fmt.Sprintf("INC-CRASH-%s-%d", strings.ToUpper(tag), i+1), "resilience-crash-"+tag+":"+x.asset, x.asset, labels)
		x.wfID = workflows.IncidentWorkflowID(x.in.Key)
		x.before = container(t, stateBefore, x.vmid)
	}
	a, b, c := incs[0], incs[1], incs[2]
	obs := newObserver(p.Client)
	t.Cleanup(obs.stop)
	started := map[*crashIncident]bool{}
	start := func(x *crashIncident) {
		startIncident(t, p.Client, workflows.TaskQueue, x.in)
		started[x] = true
		obs.watch(x)
		t.Logf("%5.1fs started %s on %s", time.Since(began).Seconds(), x.in.IncidentID, x.asset)
	}
	start(a)

	needed := slices.Clone(crashPhases)
	killed := map[string]bool{} // "wfID/step" already crashed once
	var crashes []crash
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("incidents not finished within 4 minutes; crashes %+v; phases never crashed in: %v", crashes, needed)
		}
		time.Sleep(20 * time.Millisecond)
		sts := obs.latest()
		if len(sts) == len(incs) && allClosed(sts) {
			break
		}
		fresh := func(x *crashIncident) (workflows.IncidentStatus, bool) {
			o, ok := sts[x]
			return o.st, ok && time.Since(o.at) < 700*time.Millisecond
		}

		// Staggering: C when A waits for its remediation approval; B when
		// C's snapshot is half done (so B's short detection and isolation
		// steps are over when C's investigation starts); A's approvals only
		// once B runs. A's start, B's snapshot and C's backup then overlap.
		if st, ok := fresh(a); ok && !started[c] && stepStatus(st, "shutdown") == workflows.StepWaitingApproval {
			start(c)
		}
		if st, ok := fresh(c); ok && !started[b] {
			if snap := findStep(st, "snapshot"); snap.Status != workflows.StepPending && time.Since(snap.StartedAt) > long/2 {
				start(b)
			}
		}
		for _, x := range incs {
			st, ok := fresh(x)
			if !ok || (x == a && !started[b]) {
				continue
			}
			for _, s := range st.Steps {
				if s.Status != workflows.StepWaitingApproval {
					continue
				}
				if !x.checked {
					isolationOnce(t, p.Lab.PVE, x.vmid, x.in.IncidentID)
					x.checked = true
				}
				if err := decide(p.Client, x.wfID, workflows.ApproveUpdate, s.ID, testplatform.Bob, 10*time.Second); err != nil {
					t.Logf("approve %s of %s: %v (retrying)", s.ID, x.in.IncidentID, err)
				}
				obs.invalidate(x)
			}
		}

		// Crash once all three are staggered, while steps of phases still
		// to cover run: when every phase still needed is covered, or when
		// a covering long step is about to finish. The crash comes right
		// after the ledger gains an entry (an append committed, its
		// completion maybe not yet reported), or within 300 ms (less when a
		// covering step is about to end).
		if !started[b] || len(needed) == 0 {
			continue
		}
		targets, phases, ending := crashTargets(sts, killed, needed, long)
		if len(phases) == 0 || (len(phases) < len(needed) && ending > time.Second) {
			continue
		}
		boundary := waitLedgerEntry(p, incs, min(300*time.Millisecond, ending-200*time.Millisecond))
		w.Kill()
		cr := crash{at: time.Now(), phases: phases, boundary: boundary}
		for _, tg := range targets {
			killed[tg.key] = true
			cr.hit = append(cr.hit, tg.what)
		}
		crashes = append(crashes, cr)
		obs.invalidateAll()
		needed = slices.DeleteFunc(needed, func(ph string) bool { return slices.Contains(phases, ph) })
		t.Logf("%5.1fs SIGKILL #%d during %v (%s): %v", time.Since(began).Seconds(), len(crashes), phases, boundary, cr.hit)
		w.Start()
		t.Logf("%5.1fs worker restarted (healthy)", time.Since(began).Seconds())
	}
	t.Logf("%5.1fs all incidents closed after %d crashes", time.Since(began).Seconds(), len(crashes))
	if len(needed) > 0 {
		t.Errorf("no crash happened during %v (crashes: %+v)", needed, crashes)
	}

	end := p.Lab.PVE.State()
	for _, x := range incs {
		res := waitResult(t, p.Client, x.wfID, 30*time.Second)
		if res.State != workflows.StateResolved {
			t.Errorf("%s ended %s: %s", x.in.IncidentID, res.State, res.Reason)
		}
		if res.LedgerFailures != 0 {
			t.Errorf("%s: %d ledger appends failed for good", x.in.IncidentID, res.LedgerFailures)
		}
		if !x.checked {
			t.Errorf("%s never waited for an approval, so containment's effects were not counted", x.in.IncidentID)
		}
		ledgerIntact(t, p, x.in.IncidentID, res.LedgerSeq)
		restored(t, p.Lab.PVE, x.before)
		if n := backupsOf(end, x.vmid) - backupsOf(stateBefore, x.vmid); n != 1 {
			t.Errorf("%s: %d forensic backups of ct %d, want exactly 1", x.in.IncidentID, n, x.vmid)
		}
		t.Logf("%s: %s, %d ledger entries, time to contain %s", x.in.IncidentID, res.State, res.LedgerSeq, res.Metrics.TimeToContain.Round(time.Millisecond))
	}

	t.Run("worker logs hold no secret", func(t *testing.T) {
		logs := w.Logs.String()
		if n := strings.Count(logs, `"msg":"polling"`); n != w.Starts {
			t.Errorf("captured %d worker starts in the logs, the test started it %d times", n, w.Starts)
		}
		for _, v := range []string{"IRU_HSM_PIN", "IRU_PVE_TOKEN_SECRET", "IRU_KEYCLOAK_CLIENT_SECRET", "IRU_CODEC_TOKEN"} {
			if !strings.Contains(logs, v+"=(set)") {
				t.Errorf("the worker's configuration dump does not show %s=(set): the capture misses it", v)
			}
		}
		assertNoSecrets(t, "worker binary stderr", logs, platformSecrets(t, p.Env))
	})
	t.Run("histories hold only ciphertext", func(t *testing.T) {
		plain := testenv.Client(t, client.Options{Logger: quietLogger{}})
		for _, x := range incs {
			assertCiphertextHistory(t, plain, x.wfID, []string{x.asset, x.in.IncidentID, "Terminal shell in container"})
		}
	})
	t.Logf("scenario took %s", time.Since(began).Round(time.Millisecond))
}

func allClosed(sts map[*crashIncident]observed) bool {
	for _, o := range sts {
		if o.st.State == workflows.StateOpen {
			return false
		}
	}
	return true
}

func stepStatus(st workflows.IncidentStatus, id string) string {
	for _, s := range st.Steps {
		if s.ID == id {
			return s.Status
		}
	}
	return ""
}

type crashTarget struct{ key, what string }

// crashTargets returns the running steps not crashed before (from
// statuses fresher than 700 ms), the phases among needed they cover, and
// how long until the first of those phases is no longer covered (a phase
// covered only by short steps counts as covered for long).
func crashTargets(sts map[*crashIncident]observed, killed map[string]bool, needed []string, long time.Duration) (targets []crashTarget, phases []string, ending time.Duration) {
	last := map[string]time.Duration{} // phase → when its last covering step ends
	for x, o := range sts {
		if time.Since(o.at) > 700*time.Millisecond {
			continue
		}
		for _, s := range o.st.Steps {
			key := x.wfID + "/" + s.ID
			if s.Status != workflows.StepRunning || killed[key] {
				continue
			}
			targets = append(targets, crashTarget{key: key, what: fmt.Sprintf("%s/%s (%s)", x.in.IncidentID, s.ID, s.Phase)})
			if !slices.Contains(needed, s.Phase) {
				continue
			}
			if !slices.Contains(phases, s.Phase) {
				phases = append(phases, s.Phase)
			}
			end := long
			if act, err := activities.Lookup(s.Action); err == nil && act.Long {
				end = time.Until(s.StartedAt.Add(long))
			}
			last[s.Phase] = max(last[s.Phase], end)
		}
	}
	ending = long
	for _, e := range last {
		ending = min(ending, e)
	}
	return targets, phases, ending
}

// waitLedgerEntry waits until one of the incidents' ledger chains gains an
// entry, polling the store every 2 ms for at most d, and says which.
func waitLedgerEntry(p *testplatform.Platform, incs []*crashIncident, d time.Duration) string {
	if d <= 0 {
		return "no wait: a covering step was about to end"
	}
	st := p.Host.Stores().Ledger.Store()
	head := func(x *crashIncident) int64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e, err := st.Head(ctx, x.in.IncidentID)
		if err != nil {
			return 0
		}
		return e.Seq
	}
	was := map[*crashIncident]int64{}
	for _, x := range incs {
		was[x] = head(x)
	}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		for _, x := range incs {
			if h := head(x); h > was[x] {
				return fmt.Sprintf("just after ledger entry %s/%d", x.in.IncidentID, h)
			}
		}
	}
	return "no ledger entry within " + d.String()
}

// observed is an incident's last status and when it was read.
type observed struct {
	st workflows.IncidentStatus
	at time.Time
}

// observer polls the status of each watched incident in its own goroutine
// (a query to an incident whose worker died waits until the server gives
// up on it, which must not hold up the others).
type observer struct {
	c    client.Client
	mu   sync.Mutex
	last map[*crashIncident]observed
	done chan struct{}
	wg   sync.WaitGroup
}

func newObserver(c client.Client) *observer {
	return &observer{c: c, last: map[*crashIncident]observed{}, done: make(chan struct{})}
}

func (o *observer) watch(x *crashIncident) {
	o.wg.Go(func() {
		for {
			select {
			case <-o.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			st, err := status(o.c, x.wfID, time.Second)
			if err != nil {
				continue
			}
			o.mu.Lock()
			o.last[x] = observed{st: st, at: time.Now()}
			o.mu.Unlock()
		}
	})
}

// latest returns a copy of the last statuses.
func (o *observer) latest() map[*crashIncident]observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.last)
}

// invalidate marks x's status as old (after a decision changed it).
func (o *observer) invalidate(x *crashIncident) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if v, ok := o.last[x]; ok {
		v.at = time.Time{}
		o.last[x] = v
	}
}

// invalidateAll marks every status as old (after a crash).
func (o *observer) invalidateAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for x, v := range o.last {
		v.at = time.Time{}
		o.last[x] = v
	}
}

func (o *observer) stop() {
	select {
	case <-o.done:
	default:
		close(o.done)
	}
	o.wg.Wait()
}

// shortTimeout is the StartToClose timeout the crash test gives short
// steps (the catalog's is 2 minutes: a short step lost in a crash would
// hold the incident that long).
const shortTimeout = 15 * time.Second

// crashPlaybooks writes the shipped container-compromise playbook into a
// folder for IRU_PLAYBOOKS_DIR, changed in one way only: every step whose
// action is short (not heartbeating) gets `timeout: 15s`.
func crashPlaybooks(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "playbooks", "container-compromise.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	changed := 0
	var step func(n *yaml.Node)
	step = func(n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			fields[n.Content[i].Value] = n.Content[i+1]
		}
		if par := fields["parallel"]; par != nil {
			for _, c := range par.Content {
				step(c)
			}
			return
		}
		act, ok := fields["action"]
		if !ok || fields["timeout"] != nil {
			return
		}
		a, err := activities.Lookup(act.Value)
		if err != nil {
			t.Fatalf("playbook step with unknown action %s: %v", act.Value, err)
		}
		if !a.Long {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "timeout"}, &yaml.Node{Kind: yaml.ScalarNode, Value: shortTimeout.String()})
			changed++
		}
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "phases" {
			continue
		}
		phases := top.Content[i+1]
		for j := 1; j < len(phases.Content); j += 2 {
			for _, item := range phases.Content[j].Content {
				step(item)
			}
		}
	}
	if changed < 5 {
		t.Fatalf("only %d short steps found in the playbook", changed)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "container-compromise.yaml"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
