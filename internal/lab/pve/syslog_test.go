package pve

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

func TestSyslog(t *testing.T) {
	s := startSim(t, Options{TaskDuration: InstantTasks})
	c := responder(s)
	ctx := testCtx(t)
	node := (&proxmox.Node{}).New(c, "pve1")
	ct, err := node.Container(ctx, 900)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ct.NewSnapshot(ctx, "logged"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		opts      *proxmox.NodeSyslogOptions
		wantLines int
		first     string
	}{
		{"all", &proxmox.NodeSyslogOptions{Limit: 100}, 7, "Jan 05 02:00:01 pve1 systemd[1]: Starting pve-daily-update"},
		{"paging", &proxmox.NodeSyslogOptions{Start: 1, Limit: 2}, 2, "Jan 05 02:00:03 pve1 pveupdate[2211]"},
		{"since", &proxmox.NodeSyslogOptions{Since: "2026-01-05 02:05", Until: "2026-01-05 02:30"}, 2, "Jan 05 02:10:00 pve1 pvedaemon[1187]"},
		{"service", &proxmox.NodeSyslogOptions{Service: "pve-firewall"}, 1, "Jan 05 02:11:04 pve1 pve-firewall"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := node.Syslog(ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != tc.wantLines || !strings.HasPrefix(lines[0].T, tc.first) {
				t.Fatalf("lines = %+v", lines)
			}
			if tc.opts.Start > 0 && lines[0].N != tc.opts.Start+1 {
				t.Fatalf("line numbers start at %d", lines[0].N)
			}
		})
	}
	all, _ := node.Syslog(ctx, &proxmox.NodeSyslogOptions{Limit: 100})
	joined := ""
	for _, l := range all {
		joined += l.T + "\n"
	}
	if !strings.Contains(joined, "<iru@pve!responder> starting task UPID:pve1:") || !strings.Contains(joined, ":vzsnapshot:900:iru@pve!responder: OK") {
		t.Fatalf("task lines missing:\n%s", joined)
	}
	err = c.Get(ctx, "/nodes/pve1/syslog?since=yesterday", nil)
	if err == nil || !strings.Contains(err.Error(), `"since"`) {
		t.Fatalf("bad since err = %v", err)
	}
}

// TestHandlerStandalone drives Handler() without TLS or hijacking (e.g. in
// an httptest recorder): errors fall back to the standard reason phrase.
func TestHandlerStandalone(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		path   string
		auth   string
		status int
	}{
		{"/api2/json/nodes/pve1/nothing", "PVEAPIToken=" + LabAuditTokenID + "=" + LabAuditTokenSecret, http.StatusNotImplemented},
		{"/api2/json/nodes", "", http.StatusUnauthorized},
		{"/api2/json/nodes", "PVEAPIToken=" + LabAuditTokenID + "=" + LabAuditTokenSecret, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.path+tc.auth, func(t *testing.T) {
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("status = %d, content type %q, body %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
		})
	}
}

func TestAuthFailureDelay(t *testing.T) {
	s := startSim(t, Options{AuthFailureDelay: 150 * time.Millisecond})
	start := time.Now()
	res := raw(t, s, "GET", "/api2/json/nodes", "", "", map[string]string{"Authorization": "PVEAPIToken=" + LabResponderTokenID + "=wrong"})
	if res.status != http.StatusUnauthorized || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("status %d after %v", res.status, time.Since(start))
	}
	if ok := raw(t, s, "GET", "/api2/json/nodes", "", "", nil); ok.status != http.StatusOK {
		t.Fatalf("good token failed: %d", ok.status)
	}
}
