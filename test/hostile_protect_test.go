//go:build integration

package test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	goprox "github.com/luthermonson/go-proxmox"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/workflows"
)

// Hostile inputs, protected identities and scopes: nothing an
// alert carries makes the platform act on its own people, outside its
// realms, against probe targets it must not reach, or on a quarantine
// record someone edited. Each test runs the shipped playbooks on the dev
// server against the lab and asserts the effect in the lab and the ledger.

// protectDave is a second ir-admin: the protected-account approval needs two.
var protectDave = workflows.Approver{Subject: "keycloak:iru/dave", Username: "dave", Roles: []string{"ir-admin"}, SourceIP: "127.0.0.1"}

// protectStart starts an incident with one alert carrying labels.
func protectStart(t *testing.T, p *testplatform.Platform, id, playbook, asset, severity string, labels map[string]string) (string, client.WorkflowRun) {
	t.Helper()
	in := workflows.IncidentInput{IncidentID: id, Key: playbook + ":" + asset + ":" + id, Asset: asset, Severity: severity,
		Playbook: playbook, OpenedBy: "system:intake",
		Alerts: []workflows.Alert{{ID: id + "-a1", Fingerprint: id + "-f1", Source: "generic", Rule: playbook, Severity: severity,
			Asset: asset, Summary: "hostile alert", Labels: labels, ObservedAt: time.Now(), ReceivedAt: time.Now()}}}
	wfID := workflows.IncidentWorkflowID(in.Key)
	run, err := p.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: wfID, TaskQueue: p.TaskQueue}, workflows.IncidentWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	return wfID, run
}

// protectResult waits for the incident's result.
func protectResult(t *testing.T, run client.WorkflowRun) workflows.IncidentResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var res workflows.IncidentResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// protectLedger returns the incident's ledger rows.
func protectLedger(t *testing.T, p *testplatform.Platform, incident string) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	err := p.Host.Stores().Ledger.Store().Entries(context.Background(), incident, func(e ledger.Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// protectRow returns the first ledger row with action and target, waiting
// briefly for the asynchronous appends.
func protectRow(t *testing.T, p *testplatform.Platform, incident, action, target string) ledger.Entry {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		for _, e := range protectLedger(t, p, incident) {
			if e.Action == action && e.Target == target {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ledger row %s on %s in incident %s", action, target, incident)
		}
	}
}

func protectEnabled(t *testing.T, p *testplatform.Platform, realm, user string) bool {
	t.Helper()
	on, err := p.Lab.Keycloak.UserEnabled(realm, user)
	if err != nil {
		t.Fatal(err)
	}
	return on
}

func protectSessions(t *testing.T, p *testplatform.Platform, realm, user string) int {
	t.Helper()
	s, err := p.Lab.Keycloak.Sessions(realm, user)
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

// TestHostileAlertNamesALead: a detector's alert names bob, an ir-lead.
// Containment does not disable him or end his sessions on its own: both
// steps wait for two ir-admins (a lead cannot approve, one admin is not
// enough), the timeline and the ledger say why, and only the second
// admin's approval lets them run.
func TestHostileAlertNamesALead(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	gc := gocloak.NewClient(p.Lab.Keycloak.URL())
	if _, err := gc.LoginOtp(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, "bob", keycloak.UserPassword,
		keycloak.TOTPCode("bob", time.Now())); err != nil {
		t.Fatal(err)
	}
	const id = "INC-HOSTILE-LEAD"
	wfID, run := protectStart(t, p, id, "credential-compromise", "keycloak", "high",
		map[string]string{"realm": keycloak.Realm, "username": "bob"})

	st := testplatform.WaitStep(t, p.Client, wfID, "disable", workflows.StepWaitingApproval, time.Minute)
	st = testplatform.WaitStep(t, p.Client, wfID, "logout", workflows.StepWaitingApproval, time.Minute)
	if !protectEnabled(t, p, keycloak.Realm, "bob") || protectSessions(t, p, keycloak.Realm, "bob") == 0 {
		t.Fatal("bob was disabled or logged out without approval")
	}
	for _, s := range st.Steps {
		if (s.ID == "disable" || s.ID == "logout") && (s.Approval == nil || s.Approval.Quorum != 2 || strings.Join(s.Approval.Roles, ",") != "ir-admin") {
			t.Fatalf("step %s approval = %+v, want 2 ir-admin", s.ID, s.Approval)
		}
	}
	why := 0
	for _, e := range st.Timeline {
		if strings.Contains(e.What, "protected account bob") && strings.Contains(e.Reason, "holds realm role ir-lead") {
			why++
		}
	}
	if why != 2 {
		t.Fatalf("the timeline does not say why for both steps: %+v", st.Timeline)
	}
	for _, step := range []struct{ action, target string }{{"approval_requested:kc.disable_user", "containment/disable"}, {"approval_requested:kc.logout_user", "containment/logout"}} {
		row := protectRow(t, p, id, step.action, step.target)
		if string(row.Outcome.Status) != "protected_account" || !strings.Contains(row.Outcome.Detail, "ir-lead") {
			t.Fatalf("ledger row %s = %+v", step.action, row.Outcome)
		}
	}

	// A lead (carol is also an ir-admin; bob is the subject) cannot
	// approve as a lead; carol's approval alone is not enough.
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "disable", testplatform.Bob); err == nil {
		t.Fatal("bob approved the protected step")
	}
	for _, step := range []string{"disable", "logout"} {
		if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, step, testplatform.Carol); err != nil {
			t.Fatalf("carol approves %s: %v", step, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if !protectEnabled(t, p, keycloak.Realm, "bob") || protectSessions(t, p, keycloak.Realm, "bob") == 0 {
		t.Fatal("one ir-admin's approval was enough to act on bob")
	}
	for _, step := range []string{"disable", "logout"} {
		if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, step, protectDave); err != nil {
			t.Fatalf("dave approves %s: %v", step, err)
		}
	}
	testplatform.WaitStep(t, p.Client, wfID, "enable", workflows.StepWaitingApproval, time.Minute)
	if protectEnabled(t, p, keycloak.Realm, "bob") || protectSessions(t, p, keycloak.Realm, "bob") != 0 {
		t.Fatal("bob not disabled and logged out after two ir-admins approved")
	}
	row := protectRow(t, p, id, "step:kc.disable_user", "containment/disable")
	if row.Outcome.Status != ledger.StatusOK {
		t.Fatalf("disable ledger row = %+v", row.Outcome)
	}
	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "enable", testplatform.Carol); err != nil {
		t.Fatalf("carol approves enable: %v", err)
	}
	if res := protectResult(t, run); res.State != workflows.StateResolved {
		t.Fatalf("incident ended %s: %s", res.State, res.Reason)
	}
}

// TestHostileAlertNamesMasterAdmin: an alert names the master realm's
// admin. The realm is not one the platform may act in: the steps are
// refused outright, no approval is offered, and master is untouched.
func TestHostileAlertNamesMasterAdmin(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	gc := gocloak.NewClient(p.Lab.Keycloak.URL())
	if _, err := gc.LoginAdmin(context.Background(), keycloak.AdminUsername, keycloak.AdminPassword, keycloak.MasterRealm); err != nil {
		t.Fatal(err)
	}
	before := protectSessions(t, p, keycloak.MasterRealm, keycloak.AdminUsername)
	labels := map[string]string{"realm": keycloak.MasterRealm, "username": keycloak.AdminUsername}

	t.Run("credential-compromise", func(t *testing.T) {
		const id = "INC-HOSTILE-MASTER"
		_, run := protectStart(t, p, id, "credential-compromise", "keycloak", "high", labels)
		res := protectResult(t, run)
		if res.State != workflows.StateAborted {
			t.Fatalf("incident ended %s (%s), want aborted at the refused realm", res.State, res.Reason)
		}
		row := protectRow(t, p, id, "step:kc.resolve_user", "detection/user")
		if row.Outcome.Status != ledger.StatusFailed || !strings.Contains(row.Outcome.Detail, `realm "master" is not one the platform may act in`) {
			t.Fatalf("resolve ledger row = %+v", row.Outcome)
		}
		for _, e := range protectLedger(t, p, id) {
			if strings.HasPrefix(e.Action, "approval_requested") || e.Action == "step:kc.disable_user" || e.Action == "step:kc.logout_user" {
				t.Fatalf("a refused realm led to %s", e.Action)
			}
		}
	})
	t.Run("container-compromise still contains the container", func(t *testing.T) {
		const id = "INC-HOSTILE-MASTER-CT"
		wfID, run := protectStart(t, p, id, "container-compromise", "iru-services", "high", labels)
		st := testplatform.WaitStep(t, p.Client, wfID, "shutdown", workflows.StepWaitingApproval, time.Minute)
		for _, s := range st.Steps {
			if (s.ID == "kc_user" || s.ID == "revoke_sessions") && s.Status != workflows.StepFailed {
				t.Errorf("step %s = %s, want failed (refused)", s.ID, s.Status)
			}
		}
		ct := containerByName(t, p.Lab.PVE.State(), "iru-services")
		if iso, err := p.Lab.PVE.EffectiveIsolation(ct.VMID); err != nil || !iso.Isolated {
			t.Fatalf("the container was not isolated: %+v %v", iso, err)
		}
		if err := p.Client.CancelWorkflow(context.Background(), wfID, ""); err != nil {
			t.Fatal(err)
		}
		_ = run.Get(context.Background(), nil)
	})
	if !protectEnabled(t, p, keycloak.MasterRealm, keycloak.AdminUsername) {
		t.Fatal("master admin disabled")
	}
	if n := protectSessions(t, p, keycloak.MasterRealm, keycloak.AdminUsername); n < before {
		t.Fatalf("master admin lost sessions: %d, had %d", n, before)
	}
}

// protectListener stands in for the platform's codec server: it counts
// every connection and request it receives.
type protectListener struct {
	srv   *httptest.Server
	conns atomic.Int32
	reqs  atomic.Int32
}

func newProtectListener(t *testing.T) *protectListener {
	l := &protectListener{}
	l.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		l.reqs.Add(1)
		_, _ = io.WriteString(w, `{"payloads":[]}`)
	}))
	l.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			l.conns.Add(1)
		}
	}
	l.srv.Start()
	t.Cleanup(l.srv.Close)
	return l
}

func (l *protectListener) port() string {
	_, p, _ := net.SplitHostPort(l.srv.Listener.Addr().String())
	return p
}

// protectPVE is a go-proxmox client of the lab with an API token, as
// anyone with rights on a container would use.
func protectPVE(p *testplatform.Platform) *goprox.Client {
	return goprox.NewClient(p.Lab.PVE.URL(), goprox.WithAPIToken(pve.LabResponderTokenID, pve.LabResponderTokenSecret),
		goprox.WithHTTPClient(p.Lab.PVE.HTTPClient()))
}

func protectConfig(t *testing.T, c *goprox.Client, ct pve.ContainerSnapshot) map[string]any {
	t.Helper()
	var conf map[string]any
	if err := c.Get(context.Background(), fmt.Sprintf("/nodes/%s/lxc/%d/config", ct.Node, ct.VMID), &conf); err != nil {
		t.Fatal(err)
	}
	return conf
}

func protectSetConfig(t *testing.T, c *goprox.Client, ct pve.ContainerSnapshot, body map[string]any) {
	t.Helper()
	if err := c.Put(context.Background(), fmt.Sprintf("/nodes/%s/lxc/%d/config", ct.Node, ct.VMID), body, nil); err != nil {
		t.Fatal(err)
	}
}

// TestHostileProbeTargets: the probe goes where the inventory and the
// allow-list say, never where an alert's health_url label points, and it
// refuses link-local, loopback and the platform's own addresses even when
// the inventory itself was edited to point there. The listener standing in
// for the codec server receives nothing.
func TestHostileProbeTargets(t *testing.T) {
	codec := newProtectListener(t)

	t.Run("health_url labels are not targets", func(t *testing.T) {
		p := testplatform.New(t, testplatform.Options{Env: []string{"IRU_CODEC_SERVER_ADDR=" + codec.srv.Listener.Addr().String()}})
		for i, hostile := range []string{"http://169.254.169.254/latest/meta-data/iam/security-credentials/", codec.srv.URL + "/api/v1/decode"} {
			id := fmt.Sprintf("INC-HOSTILE-PROBE-%d", i)
			wfID, run := protectStart(t, p, id, "data-exfiltration", "database", "critical", map[string]string{"health_url": hostile, "personal_data": "false"})
			done := make(chan struct{})
			go testplatform.ApproveAll(p.Client, wfID, done)
			res := protectResult(t, run)
			close(done)
			if res.State != workflows.StateResolved {
				t.Fatalf("incident ended %s: %s", res.State, res.Reason)
			}
			st, err := testplatform.Status(p.Client, wfID)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st.Steps {
				if s.ID == "probe" && (!strings.Contains(s.Outputs["detail"], p.Lab.HealthURL("database")) || strings.Contains(s.Outputs["detail"], "169.254") ||
					strings.Contains(s.Outputs["detail"], codec.srv.URL)) {
					t.Fatalf("probe went to %q, want the lab's health endpoint of database", s.Outputs["detail"])
				}
			}
		}
		if n := codec.conns.Load() + codec.reqs.Load(); n != 0 {
			t.Fatalf("the codec listener was contacted %d times", n)
		}
	})

	t.Run("inventory edited to a refused address", func(t *testing.T) {
		// No allow-list: the probe uses the inventory address, over HTTP on
		// the codec listener's port.
		p := testplatform.New(t, testplatform.Options{Env: []string{
			"IRU_CODEC_SERVER_ADDR=" + codec.srv.Listener.Addr().String(),
			"IRU_PROBE_TARGETS=", "IRU_PROBE_SCHEME=http", "IRU_PROBE_PORT=" + codec.port(), "IRU_PROBE_PATH=/api/v1/decode"}})
		c := protectPVE(p)
		for i, tc := range []struct{ asset, ip, reason string }{
			{"database", "127.0.0.1/8", "platform's own listen address"},
			{"iru-services", "169.254.169.254/16", "link-local"},
		} {
			ct := containerByName(t, p.Lab.PVE.State(), tc.asset)
			conf := protectConfig(t, c, ct)
			net0 := fmt.Sprint(conf["net0"])
			var parts []string
			for _, kv := range strings.Split(net0, ",") {
				if strings.HasPrefix(kv, "ip=") {
					kv = "ip=" + tc.ip
				}
				parts = append(parts, kv)
			}
			protectSetConfig(t, c, ct, map[string]any{"net0": strings.Join(parts, ",")})

			id := fmt.Sprintf("INC-HOSTILE-INV-%d", i)
			wfID, run := protectStart(t, p, id, "data-exfiltration", tc.asset, "critical", map[string]string{"personal_data": "false"})
			done := make(chan struct{})
			go testplatform.ApproveAll(p.Client, wfID, done)
			res := protectResult(t, run)
			close(done)
			if res.State == workflows.StateResolved {
				t.Fatalf("incident resolved with a probe of %s", tc.ip)
			}
			row := protectRow(t, p, id, "step:net.health_probe", "recovery/probe")
			if row.Outcome.Status != ledger.StatusFailed || !strings.Contains(row.Outcome.Detail, "refused") || !strings.Contains(row.Outcome.Detail, tc.reason) {
				t.Fatalf("probe ledger row = %+v, want a refusal naming %q", row.Outcome, tc.reason)
			}
		}
		if n := codec.conns.Load() + codec.reqs.Load(); n != 0 {
			t.Fatalf("the codec listener was contacted %d times", n)
		}
	})
}

// protectForge rewrites the quarantine record in a description: the prior
// firewall becomes "disabled", the record's signature line is kept.
func protectForge(t *testing.T, description string) string {
	t.Helper()
	const prefix = "iru-quarantine:v1:"
	lines := strings.Split(description, "\n")
	for i, l := range lines {
		enc, ok := strings.CutPrefix(strings.TrimSpace(l), prefix)
		if !ok {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		js, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(js, &rec); err != nil {
			t.Fatal(err)
		}
		// The container's firewall "was off" before the isolation: lifting
		// it would leave the container open.
		prior := rec["prior"].(map[string]any)
		opts, _ := prior["options"].(map[string]any)
		if opts == nil {
			opts = map[string]any{}
		}
		opts["enable"] = "0"
		prior["options"] = opts
		js, _ = json.Marshal(rec)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(js)
		_ = zw.Close()
		lines[i] = prefix + base64.RawURLEncoding.EncodeToString(buf.Bytes())
		return strings.Join(lines, "\n")
	}
	t.Fatalf("no quarantine record in %q", description)
	return ""
}

// TestHostileQuarantineRecordEdited: while a container is isolated,
// someone with VM.Config.Options rewrites the quarantine record in its
// description (the prior firewall state "off"). Lifting the isolation
// refuses the record, in recovery and in the abort's compensation, and the
// lab shows the container still isolated.
func TestHostileQuarantineRecordEdited(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	const id = "INC-HOSTILE-RECORD"
	wfID, run := protectStart(t, p, id, "data-exfiltration", "database", "critical", map[string]string{"personal_data": "false"})
	testplatform.WaitStep(t, p.Client, wfID, "unisolate", workflows.StepWaitingApproval, time.Minute)
	ct := containerByName(t, p.Lab.PVE.State(), "database")
	c := protectPVE(p)
	desc := fmt.Sprint(protectConfig(t, c, ct)["description"])
	if !strings.Contains(desc, "iru-quarantine-sig:v1:") {
		t.Fatalf("the isolation wrote no signed record: %q", desc)
	}
	protectSetConfig(t, c, ct, map[string]any{"description": protectForge(t, desc)})

	if _, err := testplatform.Decide(p.Client, wfID, workflows.ApproveUpdate, "unisolate", testplatform.Bob); err != nil {
		t.Fatal(err)
	}
	res := protectResult(t, run)
	if res.State == workflows.StateResolved {
		t.Fatalf("incident resolved: the forged record was acted on")
	}
	iso, err := p.Lab.PVE.EffectiveIsolation(ct.VMID)
	if err != nil {
		t.Fatal(err)
	}
	if !iso.Isolated || !iso.FirewallIsolated {
		t.Fatalf("the container is no longer isolated: %+v", iso)
	}
	row := protectRow(t, p, id, "step:pve.unisolate", "recovery/unisolate")
	if row.Outcome.Status != ledger.StatusFailed || !strings.Contains(row.Outcome.Detail, "fails authentication") {
		t.Fatalf("unisolate ledger row = %+v", row.Outcome)
	}
	comp := false
	for _, e := range protectLedger(t, p, id) {
		if e.Action == "compensation:pve.unisolate" {
			comp = true
			if e.Outcome.Status == ledger.StatusOK || string(e.Outcome.Status) == "compensated" {
				t.Fatalf("the compensation lifted the isolation from a forged record: %+v", e.Outcome)
			}
		}
	}
	if !comp {
		t.Log("no compensation row (the isolation's compensation was retired by the recovery step)")
	}
}
