//go:build integration

package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

func TestResolveAsset(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct {
		asset, vmid, node, ip string
	}{
		{"api-gateway", "100", "pve1", "10.20.10.10"},
		{"103", "103", "pve2", "10.20.30.13"},
		{"10.20.40.12", "102", "pve2", "10.20.20.12"}, // second NIC's address
		{"tag:drill", "900", "pve1", "10.20.99.90"},
	} {
		t.Run(tc.asset, func(t *testing.T) {
			res := mustRun(t, l.acts, input(activities.PVEResolveAsset, tc.asset, nil))
			o := res.Outputs
			if o["vmid"] != tc.vmid || o["node"] != tc.node || o["ip"] != tc.ip || o["status"] != "running" {
				t.Fatalf("outputs %v", o)
			}
			if !strings.HasPrefix(o["last_backup"], "local:backup/vzdump-lxc-"+tc.vmid+"-") {
				t.Fatalf("last_backup %q", o["last_backup"])
			}
		})
	}
	_, err := run(t, l.acts, input(activities.PVEResolveAsset, "no-such-host", nil))
	if typ, fin := errType(t, err); typ != activities.ErrTypeNotFound || !fin {
		t.Fatalf("unknown asset: %s %v", typ, fin)
	}
	_, err = run(t, l.acts, input(activities.PVEResolveAsset, "tag:iru", nil)) // four containers carry it
	if typ, fin := errType(t, err); typ != activities.ErrTypeBadParams || !fin || !contains(err.Error(), "ambiguous") {
		t.Fatalf("ambiguous tag: %s %v: %v", typ, fin, err)
	}
}

// TestActionsIdempotent runs each action twice: the second run succeeds
// with the same outputs and leaves the lab as the first run did.
func TestActionsIdempotent(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct {
		name   string
		in     activities.ActionInput
		output string
		check  func(t *testing.T, res activities.ActionResult)
	}{
		{"snapshot", input(activities.PVESnapshot, "api-gateway", map[string]string{"name": "ir-INC-42", "include_ram": "true"}), "snapshot",
			func(t *testing.T, res activities.ActionResult) {
				if res.Outputs["snapshot"] != "ir-inc-42" || !contains(res.Summary, "memory state not included") {
					t.Fatalf("%+v", res)
				}
			}},
		{"backup", input(activities.PVEBackup, "keycloak", map[string]string{"storage": "local", "mode": "snapshot"}), "volid",
			func(t *testing.T, res activities.ActionResult) {
				if !strings.HasPrefix(res.Outputs["volid"], "local:backup/vzdump-lxc-101-") {
					t.Fatalf("%+v", res)
				}
			}},
		{"stop", input(activities.PVEStop, "database", nil), "status",
			func(t *testing.T, res activities.ActionResult) {
				if res.Outputs["status"] != "stopped" {
					t.Fatalf("%+v", res)
				}
			}},
		{"start", input(activities.PVEStart, "database", nil), "status",
			func(t *testing.T, res activities.ActionResult) {
				if res.Outputs["status"] != "running" {
					t.Fatalf("%+v", res)
				}
			}},
		{"shutdown", input(activities.PVEShutdown, "drill-canary", map[string]string{"force": "true", "timeout": "10s"}), "status",
			func(t *testing.T, res activities.ActionResult) {
				if res.Outputs["status"] != "stopped" || res.Undo["prior_status"] == "" {
					t.Fatalf("%+v", res)
				}
			}},
		{"restore snapshot", input(activities.PVERestore, "iru-services", map[string]string{"from": "baseline"}), "status", nil},
		{"resolve", input(activities.PVEResolveAsset, "keycloak", nil), "vmid", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := mustRun(t, l.acts, tc.in)
			after := l.state(t)
			second := mustRun(t, l.acts, tc.in)
			if got := l.state(t); got != after {
				t.Fatalf("second run changed the lab state")
			}
			if first.Outputs[tc.output] != second.Outputs[tc.output] || first.Outputs[tc.output] == "" {
				t.Fatalf("outputs %v then %v", first.Outputs, second.Outputs)
			}
			if tc.check != nil {
				tc.check(t, first)
			}
		})
	}
}

func TestSnapshotName(t *testing.T) {
	for _, tc := range []struct{ name, incident, want string }{
		{"ir-INC-42", "", "ir-inc-42"},
		{"", "2026-0042", "ir-2026-0042"},
		{"42abc", "", "ir-42abc"},
		{"current", "", "ir-current"},
		{"ir-a.b c", "", "ir-a-b-c"},
	} {
		if got := SnapshotName(tc.name, tc.incident); got != tc.want {
			t.Errorf("SnapshotName(%q, %q) = %q, want %q", tc.name, tc.incident, got, tc.want)
		}
	}
	long := SnapshotName("", "0193f1c2-7a3b-7c4d-8e5f-a1b2c3d4e5f6-extra")
	other := SnapshotName("", "0193f1c2-7a3b-7c4d-8e5f-a1b2c3d4e5f6-other")
	if len(long) > 40 || !reConfigID.MatchString(long) || long == other {
		t.Fatalf("long names %q %q", long, other)
	}
}

func TestSnapshotForeignConflict(t *testing.T) {
	l := newLab(t)
	x := l.acts.call("test")
	var upid string
	if err := x.c.Post(context.Background(), "/nodes/pve1/lxc/100/snapshot", map[string]any{"snapname": "ir-inc-42", "description": "by hand"}, &upid); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, l.acts, input(activities.PVESnapshot, "api-gateway", map[string]string{"name": "ir-INC-42"}))
	if typ, fin := errType(t, err); typ != activities.ErrTypeConflict || !fin {
		t.Fatalf("%s %v: %v", typ, fin, err)
	}
}

// TestPowerUndo: stop records the status the first attempt saw, and the
// compensating start leaves a container that was stopped alone.
func TestPowerUndo(t *testing.T) {
	l := newLab(t)
	res := mustRun(t, l.acts, input(activities.PVEStop, "database", nil))
	if res.Undo["prior_status"] != "running" {
		t.Fatalf("undo %v", res.Undo)
	}
	// A retry of the stop whose first attempt stopped the CT (heartbeat
	// details of that attempt say "running") still reports running as prior.
	env := activitytest.New(nil)
	l.acts.Register(env)
	env.SetHeartbeatDetails(progress{PriorStatus: "running"})
	v, err := env.ExecuteActivity(activities.PVEStop, input(activities.PVEStop, "database", nil))
	if err != nil {
		t.Fatal(err)
	}
	var retried activities.ActionResult
	_ = v.Get(&retried)
	if retried.Undo["prior_status"] != "running" {
		t.Fatalf("retried undo %v", retried.Undo)
	}
	comp := input(activities.PVEStart, "database", nil)
	comp.Undo = map[string]string{"prior_status": "stopped"}
	if r := mustRun(t, l.acts, comp); r.Outputs["status"] != "stopped" {
		t.Fatalf("compensation started a CT that was stopped: %+v", r)
	}
	comp.Undo["prior_status"] = "running"
	if r := mustRun(t, l.acts, comp); r.Outputs["status"] != "running" {
		t.Fatalf("compensation did not start: %+v", r)
	}
}

// TestBackupAndRestore: forensic backups are never offered nor restored;
// a restore keeps a quarantine in place.
func TestBackupAndRestore(t *testing.T) {
	l := newLab(t)
	clean := mustRun(t, l.acts, input(activities.PVEResolveAsset, "keycloak", nil)).Outputs["last_backup"]
	forensic := mustRun(t, l.acts, input(activities.PVEBackup, "keycloak", nil)).Outputs["volid"]
	if forensic == clean || forensic == "" {
		t.Fatalf("forensic %q clean %q", forensic, clean)
	}
	if got := mustRun(t, l.acts, input(activities.PVEResolveAsset, "keycloak", nil)).Outputs["last_backup"]; got != clean {
		t.Fatalf("last_backup after a forensic backup = %q, want %q", got, clean)
	}
	_, err := run(t, l.acts, input(activities.PVERestore, "keycloak", map[string]string{"from": forensic}))
	if typ, fin := errType(t, err); typ != activities.ErrTypePrecondition || !fin {
		t.Fatalf("restore from forensic copy: %s %v: %v", typ, fin, err)
	}
	_, err = run(t, l.acts, input(activities.PVERestore, "keycloak", map[string]string{"from": "local:backup/nope.tar.zst"}))
	if typ, fin := errType(t, err); typ != activities.ErrTypeNotFound || !fin {
		t.Fatalf("restore from missing backup: %s %v", typ, fin)
	}

	var orig pve.ContainerSnapshot
	for _, c := range l.srv.State().Containers {
		if c.VMID == 101 {
			orig = c
		}
	}
	mustRun(t, l.acts, input(activities.PVEIsolate, "keycloak", nil))
	res := mustRun(t, l.acts, input(activities.PVERestore, "keycloak", map[string]string{"from": clean}))
	if res.Outputs["status"] != "stopped" || !contains(res.Summary, "isolation (firewall) re-applied") {
		t.Fatalf("restore %+v", res)
	}
	iso, _ := l.srv.EffectiveIsolation(101)
	if !iso.ContainerFirewall || !iso.InDrop || !iso.OutDrop || !iso.AllNICsFirewalled || iso.AcceptRules != 2 {
		t.Fatalf("restore lifted the quarantine: %+v", iso)
	}
	mustRun(t, l.acts, input(activities.PVEUnisolate, "keycloak", nil))
	for _, c := range l.srv.State().Containers {
		if c.VMID != 101 {
			continue
		}
		a, _ := json.Marshal(c.Firewall)
		b, _ := json.Marshal(orig.Firewall)
		if string(a) != string(b) || c.Config["tags"] != orig.Config["tags"] || c.Config["description"] != orig.Config["description"] {
			t.Fatalf("after restore+unisolate: %s %v, want %s %v", a, c.Config, b, orig.Config)
		}
	}
}

func TestCollectEvidence(t *testing.T) {
	l := newLab(t)
	mustRun(t, l.acts, input(activities.PVESnapshot, "api-gateway", nil)) // a task to find
	res := mustRun(t, l.acts, input(activities.PVECollectEvidence, "api-gateway", map[string]string{"window": "6h"}))
	if len(res.EvidenceRefs) != 10 || res.Outputs["manifest"] != res.EvidenceRefs[9] {
		t.Fatalf("refs %v outputs %v", res.EvidenceRefs, res.Outputs)
	}
	var manifest struct {
		Items []struct{ Name, API, Ref string } `json:"items"`
	}
	if err := json.Unmarshal(l.ev.get(res.Outputs["manifest"]), &manifest); err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, it := range manifest.Items {
		body := l.ev.get(it.Ref)
		if len(body) == 0 {
			t.Fatalf("item %s not stored", it.Name)
		}
		found[it.Name] = string(body)
	}
	for name, want := range map[string]string{
		"pve/api-gateway/config.json":         "api-gateway",
		"pve/api-gateway/firewall-rules.json": "json-rpc",
		"pve/api-gateway/firewall-log.json":   "policy DROP",
		"pve/api-gateway/tasks.json":          "create snapshot",
		"pve/api-gateway/syslog.json":         "vzsnapshot",
		"pve/api-gateway/interfaces.json":     "10.20.10.10",
	} {
		if !contains(found[name], want) {
			t.Errorf("%s lacks %q: %s", name, want, found[name])
		}
	}
	for _, r := range res.EvidenceRefs {
		if it := l.ev.items[r]; it.Class != activities.ClassOperational || it.Source != "pve:pve1/lxc/100" {
			t.Errorf("item %s: %+v", r, it)
		}
	}
}

// TestRotateToken rotates the worker's own token, resumes after a
// failure at every call, and never exposes the secret.
func TestRotateToken(t *testing.T) {
	in := input(activities.PVERotateToken, "", map[string]string{"token_id": pve.LabResponderTokenID, "reason": "test"})
	newID := RotatedTokenID("responder", in.IdempotencyKey)
	tokens := func(l *labEnv) []string {
		for _, u := range l.srv.State().Users {
			if u.UserID == "iru@pve" {
				return u.Tokens
			}
		}
		return nil
	}
	l := newLab(t)
	start := l.count.n.Load()
	res := mustRun(t, l.acts, in)
	calls := l.count.n.Load() - start
	ref := res.Outputs["token_ref"]
	secret, err := l.sink.Read(ref)
	if err != nil || len(secret) == 0 {
		t.Fatalf("secret %q: %v", ref, err)
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), string(secret)) {
		t.Fatal("the secret is in the result")
	}
	if got := strings.Join(tokens(l), ","); got != "audit,"+newID {
		t.Fatalf("tokens %s", got)
	}
	if _, tok := l.acts.current(); tok != "iru@pve!"+newID {
		t.Fatalf("worker still uses %s", tok)
	}
	mustRun(t, l.acts, input(activities.PVEResolveAsset, "keycloak", nil)) // the new token works
	if again := mustRun(t, l.acts, in); again.Outputs["token_ref"] != ref || strings.Join(tokens(l), ",") != "audit,"+newID {
		t.Fatalf("second rotation %+v tokens %v", again, tokens(l))
	}

	for n := int64(1); n <= calls; n++ {
		l := newLab(t)
		l.count.after.Store(true)
		l.count.failAt.Store(l.count.n.Load() + n)
		if _, err := run(t, l.acts, in); err == nil {
			t.Fatalf("call %d failing: no error", n)
		}
		l.count.failAt.Store(0)
		res := mustRun(t, l.acts, in)
		if got := strings.Join(tokens(l), ","); got != "audit,"+newID {
			t.Fatalf("call %d failing: tokens %s", n, got)
		}
		if _, err := l.sink.Read(res.Outputs["token_ref"]); err != nil {
			t.Fatalf("call %d failing: %v", n, err)
		}
		mustRun(t, l.acts, input(activities.PVEResolveAsset, "keycloak", nil))
	}

	t.Run("sink without read keeps the old token", func(t *testing.T) {
		l := newLab(t)
		a := l.newActs(t, l.cfg, writeOnlySink{l.sink})
		l.count.after.Store(true)
		l.count.failAt.Store(l.count.n.Load() + calls) // the delete of the old token: answer lost
		_, _ = run(t, a, in)
		l.count.failAt.Store(0)
		// The old token is deleted now; a fresh worker would need the new one.
		if got := strings.Join(tokens(l), ","); got != "audit,"+newID {
			t.Fatalf("tokens %s", got)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		l := newLab(t)
		drill := input(activities.PVERotateToken, "", map[string]string{"token_id": pve.LabAuditTokenID})
		drill.Drill = true
		for _, tc := range []struct {
			in  activities.ActionInput
			typ string
		}{
			{input(activities.PVERotateToken, "", map[string]string{"token_id": "iru@pve!nope"}), activities.ErrTypeNotFound},
			{input(activities.PVERotateToken, "", map[string]string{"token_id": "not-a-token"}), activities.ErrTypeBadParams},
			{drill, activities.ErrTypePrecondition},
		} {
			_, err := run(t, l.acts, tc.in)
			if typ, fin := errType(t, err); typ != tc.typ || !fin {
				t.Errorf("%v: %s %v: %v", tc.in.Params, typ, fin, err)
			}
		}
	})
}

// TestDryRunChangesNothing: every action plans without touching the lab.
func TestDryRunChangesNothing(t *testing.T) {
	l := newLab(t)
	mustRun(t, l.acts, input(activities.PVEIsolate, "database", nil)) // so unisolate has something to plan
	for _, in := range []activities.ActionInput{
		input(activities.PVEResolveAsset, "api-gateway", nil),
		input(activities.PVEIsolate, "api-gateway", map[string]string{"allow": "10.10.0.0/24"}),
		input(activities.PVEIsolate, "keycloak", map[string]string{"method": "link_down"}),
		input(activities.PVEUnisolate, "database", nil),
		input(activities.PVESnapshot, "api-gateway", nil),
		input(activities.PVECollectEvidence, "api-gateway", nil),
		input(activities.PVEStop, "api-gateway", nil),
		input(activities.PVEShutdown, "api-gateway", map[string]string{"force": "true"}),
		input(activities.PVEStart, "api-gateway", nil),
		input(activities.PVEBackup, "api-gateway", nil),
		input(activities.PVERestore, "api-gateway", map[string]string{"from": "baseline"}),
		input(activities.PVERestore, "api-gateway", map[string]string{"from": "local:backup/vzdump-lxc-100-2026_01_05-03_00_00.tar.zst"}),
		input(activities.PVERotateToken, "", map[string]string{"token_id": pve.LabResponderTokenID}),
	} {
		t.Run(in.Action+" "+in.Params["asset"]+in.Params["method"]+in.Params["from"], func(t *testing.T) {
			in.DryRun = true
			before := l.state(t)
			evidence := len(l.ev.data)
			res := mustRun(t, l.acts, in)
			if l.state(t) != before {
				t.Fatal("dry run changed the lab state")
			}
			if len(l.ev.data) != evidence {
				t.Fatal("dry run stored evidence")
			}
			if len(res.Plan) == 0 && in.Action != activities.PVEResolveAsset {
				t.Fatalf("no plan: %+v", res)
			}
		})
	}
	t.Run("read-only token", func(t *testing.T) {
		cfg := l.cfg
		cfg.TokenID, cfg.TokenSecret = pve.LabAuditTokenID, pve.LabAuditTokenSecret
		ro := l.newActs(t, cfg, l.sink)
		in := input(activities.PVEIsolate, "api-gateway", nil)
		in.DryRun = true
		_, err := run(t, ro, in)
		if typ, fin := errType(t, err); typ != activities.ErrTypePermission || !fin {
			t.Fatalf("%s %v: %v", typ, fin, err)
		}
	})
}

// TestFaultClassification: faults injected in the lab give the right
// error type and retryability.
func TestFaultClassification(t *testing.T) {
	l := newLab(t, withConfig(func(c *Config) { c.HTTPTimeout = 300 * time.Millisecond }))
	ro := func() *Activities {
		cfg := l.cfg
		cfg.TokenID, cfg.TokenSecret = pve.LabAuditTokenID, pve.LabAuditTokenSecret
		return l.newActs(t, cfg, l.sink)
	}()
	snap := input(activities.PVESnapshot, "api-gateway", nil)
	for _, tc := range []struct {
		name  string
		acts  *Activities
		fault *pve.Fault
		in    activities.ActionInput
		typ   string
		final bool
		msg   string
	}{
		{"500", l.acts, &pve.Fault{Method: "GET", Path: "/cluster/resources", ErrorRate: 1, ErrorStatus: 500}, snap, ErrTypeUnavailable, false, "GET /cluster/resources"},
		{"503", l.acts, &pve.Fault{Method: "POST", Path: "/nodes/{node}/lxc/{vmid}/snapshot", ErrorRate: 1, ErrorStatus: 503}, snap, ErrTypeUnavailable, false, "POST /nodes/pve1/lxc/100/snapshot: 503"},
		{"429", l.acts, &pve.Fault{Method: "PUT", Path: "/nodes/{node}/lxc/{vmid}/config", ErrorRate: 1, ErrorStatus: 429}, input(activities.PVEIsolate, "api-gateway", nil), ErrTypeUnavailable, false, "api-gateway"},
		{"400", l.acts, &pve.Fault{Method: "POST", Path: "/nodes/{node}/vzdump", ErrorRate: 1, ErrorStatus: 400}, input(activities.PVEBackup, "keycloak", nil), activities.ErrTypeBadParams, true, "vzdump"},
		{"hang", l.acts, &pve.Fault{Method: "GET", Path: "/nodes/{node}/lxc/{vmid}/firewall/rules", Hang: true}, input(activities.PVEIsolate, "keycloak", nil), ErrTypeUnavailable, false, "timed out"},
		{"task failure", l.acts, &pve.Fault{Method: "POST", Path: "/nodes/{node}/lxc/{vmid}/snapshot", TaskFailure: "zfs error: out of space"}, snap, ErrTypeTaskFailed, false, "out of space"},
		{"vzdump job errors", l.acts, &pve.Fault{Method: "POST", Path: "/nodes/{node}/vzdump", TaskFailure: "job errors"}, input(activities.PVEBackup, "keycloak", nil), ErrTypeTaskFailed, false, "job errors"},
		{"missing CT", l.acts, nil, input(activities.PVESnapshot, "4242", nil), activities.ErrTypeNotFound, true, "4242"},
		{"missing snapshot", l.acts, nil, input(activities.PVERestore, "keycloak", map[string]string{"from": "nope"}), activities.ErrTypeNotFound, true, "nope"},
		{"read-only token", ro, nil, input(activities.PVEStop, "api-gateway", nil), activities.ErrTypePermission, true, "POST /nodes/pve1/lxc/100/status/stop: 403"},
		{"read-only isolate", ro, nil, input(activities.PVEIsolate, "api-gateway", nil), activities.ErrTypePermission, true, "403"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != nil {
				l.srv.SetFaults(*tc.fault)
			}
			defer l.srv.SetFaults()
			before := l.state(t)
			_, err := run(t, tc.acts, tc.in)
			if err == nil {
				t.Fatal("no error")
			}
			typ, fin := errType(t, err)
			if typ != tc.typ || fin != tc.final || !contains(err.Error(), tc.msg) {
				t.Fatalf("got %s final=%v %q, want %s final=%v containing %q", typ, fin, err, tc.typ, tc.final, tc.msg)
			}
			if tc.final && l.state(t) != before {
				t.Fatal("a final failure changed the lab state")
			}
		})
	}
}

// TestLockWait: an isolation running while a snapshot holds the CT lock
// waits for the lock instead of failing.
func TestLockWait(t *testing.T) {
	l := newLab(t, withTaskDurations(map[string]time.Duration{"vzsnapshot": 300 * time.Millisecond}))
	done := make(chan error, 1)
	go func() {
		_, err := run(t, l.acts, input(activities.PVESnapshot, "api-gateway", nil))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the snapshot task holds "lock: snapshot"
	mustRun(t, l.acts, input(activities.PVEIsolate, "api-gateway", nil))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if iso, _ := l.srv.EffectiveIsolation(100); !iso.InDrop || !iso.OutDrop {
		t.Fatalf("%+v", iso)
	}
}

// heartbeatCounter counts RecordHeartbeat calls of activities.
type heartbeatCounter struct {
	interceptor.WorkerInterceptorBase
	n atomic.Int64
}

func (h *heartbeatCounter) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &hbInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, h: h}
}

type hbInbound struct {
	interceptor.ActivityInboundInterceptorBase
	h *heartbeatCounter
}

func (i *hbInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return i.Next.Init(&hbOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}, h: i.h})
}

type hbOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	h *heartbeatCounter
}

func (o *hbOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.h.n.Add(1)
	o.Next.RecordHeartbeat(ctx, details...)
}

// TestHeartbeats: a long snapshot task heartbeats on every poll (activity
// test environment), so it survives a heartbeat timeout far shorter than
// the task (workflow test environment, which enforces heartbeat timeouts);
// a poll that hangs stops the heartbeats and the attempt times out.
func TestHeartbeats(t *testing.T) {
	l := newLab(t, withTaskDurations(map[string]time.Duration{"vzsnapshot": 1200 * time.Millisecond}),
		withConfig(func(c *Config) { c.TaskPoll = 40 * time.Millisecond; c.HTTPTimeout = 2 * time.Second }))

	t.Run("heartbeat on every poll", func(t *testing.T) {
		env := activitytest.New(nil)
		hb := &heartbeatCounter{}
		env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{hb}})
		l.acts.Register(env)
		if _, err := env.ExecuteActivity(activities.PVESnapshot, input(activities.PVESnapshot, "keycloak", nil)); err != nil {
			t.Fatal(err)
		}
		if n := hb.n.Load(); n < 10 {
			t.Fatalf("%d heartbeats during a 1.2 s task polled every 40 ms", n)
		}
	})

	runWF := func(t *testing.T, in activities.ActionInput) error {
		var s testsuite.WorkflowTestSuite
		s.SetLogger(quietLogger)
		env := s.NewTestWorkflowEnvironment()
		l.acts.Register(env)
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in activities.ActionInput) (activities.ActionResult, error) {
			ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
				HeartbeatTimeout: 400 * time.Millisecond, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
			var res activities.ActionResult
			err := workflow.ExecuteActivity(ctx, in.Action, in).Get(ctx, &res)
			return res, err
		}, workflow.RegisterOptions{Name: "hb"})
		env.ExecuteWorkflow("hb", in)
		return env.GetWorkflowError()
	}
	t.Run("survives a short heartbeat timeout", func(t *testing.T) {
		in := input(activities.PVESnapshot, "api-gateway", nil)
		if err := runWF(t, in); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("hung poll times out", func(t *testing.T) {
		l.srv.SetFaults(pve.Fault{Method: "GET", Path: "/nodes/{node}/tasks/{upid}/status", Hang: true})
		defer l.srv.SetFaults()
		in := input(activities.PVESnapshot, "database", nil)
		err := runWF(t, in)
		var te *temporal.TimeoutError
		if !errors.As(err, &te) {
			t.Fatalf("want a heartbeat timeout, got %v", err)
		}
		if te.TimeoutType().String() != "Heartbeat" {
			t.Fatalf("timeout type %v", te.TimeoutType())
		}
	})
}

type registrar struct{ names []string }

func (r *registrar) RegisterActivityWithOptions(_ any, o activity.RegisterOptions) {
	r.names = append(r.names, o.Name)
}

// TestRegisterCoversCatalog: every pve.* catalog action is registered
// under its catalog name, and nothing else.
func TestRegisterCoversCatalog(t *testing.T) {
	l := newLab(t)
	var r registrar
	l.acts.Register(&r)
	var want []string
	for _, a := range activities.Catalog() {
		if strings.HasPrefix(a.Name, "pve.") {
			want = append(want, a.Name)
		}
	}
	slices.Sort(r.names)
	if !slices.Equal(r.names, want) {
		t.Fatalf("registered %v, catalog %v", r.names, want)
	}
}
