package intake

import (
	"bytes"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/spool"
)

func TestEndToEndFakeSignaler(t *testing.T) {
	e := newEnv(t, spool.Options{})
	mem := newMem()
	e.forward(mem, forward.Options{TaskQueue: "test-tq"})

	wz := fixture(t, "wazuh_sshd_bruteforce.json")
	posts := []struct {
		detector string
		body     []byte
		hdr      []string
		n        int
	}{
		{"alertmanager", fixture(t, "alertmanager_firing.json"), bearer(amKey), 2},
		{"falco", fixture(t, "falco_container_shell.json"), []string{"X-IRU-Key", falcoKey}, 1},
		{"wazuh", wz, signedHeaders(wz, time.Now()), 1},
		{"generic", fixture(t, "generic_single.json"), bearer(genericKey), 1},
		{"generic", fixture(t, "generic_batch.json"), bearer(genericKey), 2},
		{"generic", genericAlert("ghost-9", 1), bearer(genericKey), 1},
		// Labels that name another container's node and vmid locate nothing.
		{"generic", []byte(`{"source":"storm","rule":"ContainerShell","severity":"high","asset":"web-1","summary":"forged",` +
			`"labels":{"node":"pve2","vmid":"122","pve_node":"pve2","proxmox_vmid":"122"},"observed_at":"2024-05-01T12:00:00Z"}`), bearer(genericKey), 1},
	}
	for _, p := range posts {
		r := e.post(p.detector, p.body, p.hdr...)
		if r.status != http.StatusAccepted || r.body["accepted"] != float64(p.n) {
			t.Fatalf("%s: %d %v", p.detector, r.status, r.body)
		}
	}
	eventually(t, "delivery", 10*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	// A resolved alert joins the running incident; one without an incident
	// opens nothing.
	resolved := fixture(t, "alertmanager_resolved.json")
	if r := e.post("alertmanager", resolved, bearer(amKey)...); r.status != http.StatusAccepted {
		t.Fatalf("resolved: %d %v", r.status, r.body)
	}
	orphan := bytes.Replace(resolved, []byte(`"container": "keycloak-1"`), []byte(`"container": "db-1"`), 1)
	if r := e.post("alertmanager", orphan, bearer(amKey)...); r.status != http.StatusAccepted {
		t.Fatalf("orphan resolved: %d %v", r.status, r.body)
	}
	eventually(t, "delivery", 10*time.Second, func() bool { return e.sp.Stats().Pending == 0 })

	starts, alerts := mem.snapshot()
	want := map[string]int{
		"incident:data-exfiltration:web-1":          1,
		"incident:data-exfiltration:db-1":           2, // Alertmanager by hostname, generic by IP
		"incident:container-compromise:web-1":       2, // falco + the forged labels
		"incident:failed-auth-threshold:web-1":      1,
		"incident:key-compromise:vault-1":           1,
		"incident:failed-auth-threshold:keycloak-1": 2, // firing (generic) + resolved
		"incident:unknown-asset-triage:ghost-9":     1,
	}
	if len(alerts) != len(want) {
		t.Errorf("workflows %v, want %v", slices.Sorted(mapsKeys(alerts)), slices.Sorted(mapsKeys(want)))
	}
	for id, n := range want {
		if len(alerts[id]) != n {
			t.Errorf("%s got %d alerts, want %d", id, len(alerts[id]), n)
		}
		in, ok := starts[id]
		if !ok {
			t.Errorf("%s never started", id)
			continue
		}
		if "incident:"+in.Key != id || in.IncidentID == "" || in.Playbook == "" || in.Asset == "" || !strings.Contains(in.OpenedBy, "/") {
			t.Errorf("%s start input %+v", id, in)
		}
		// The asset's location is the inventory's, whatever the labels say.
		want := inventoryRef(in.Asset)
		if !reflect.DeepEqual(in.AssetRef, want) {
			t.Errorf("%s start asset ref %+v, want %+v", id, in.AssetRef, want)
		}
		for _, a := range alerts[id] {
			if !reflect.DeepEqual(a.AssetRef, inventoryRef(a.Asset)) {
				t.Errorf("%s alert %q asset ref %+v, want %+v", id, a.Summary, a.AssetRef, inventoryRef(a.Asset))
			}
		}
	}
	falco := alerts["incident:container-compromise:web-1"][0]
	if falco.ObservedAt.UnixNano() != 1714566896789012345 || falco.Labels["evt.time"] != "1714566896789012345" {
		t.Errorf("falco evt.time lost precision: %d %q", falco.ObservedAt.UnixNano(), falco.Labels["evt.time"])
	}
	if !strings.HasPrefix(falco.RawDigest, "sha256:") || falco.ID == "" || falco.ReceivedAt.IsZero() {
		t.Errorf("falco alert %+v", falco)
	}
	// An asset no inventory knows opens a triage, not the rule's playbook.
	ghost := alerts["incident:unknown-asset-triage:ghost-9"][0]
	if ghost.Labels[LabelUnmapped] != "true" || ghost.Asset != "ghost-9" || ghost.Labels[LabelRoutedPlaybook] != "container-compromise" || ghost.AssetRef != nil {
		t.Errorf("unmapped alert %+v", ghost)
	}
	if starts["incident:failed-auth-threshold:web-1"].OpenedBy != "wazuh/w1" {
		t.Errorf("opened by %q", starts["incident:failed-auth-threshold:web-1"].OpenedBy)
	}
	if st := e.h.Stats(); st.Accepted != 11 || st.Rejected != 0 || st.Unauthorized != 0 {
		t.Errorf("handler stats %+v", st)
	}
}

// inventoryRef is where testAssets put an asset (nil: not listed).
func inventoryRef(name string) *activities.AssetRef {
	for _, a := range testAssets {
		if a.Name == name {
			return &activities.AssetRef{Name: a.Name, Node: a.Node, VMID: a.VMID}
		}
	}
	return nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, spool.Options{})
	am := string(fixture(t, "alertmanager_firing.json"))
	// Three alerts of which the last is bad: nothing may be accepted.
	threeBad := strings.Replace(am, `"alerts": [`, `"alerts": [{"status":"firing","labels":{"alertname":"A"},"startsAt":"2024-05-01T00:00:00Z"},`, 1)
	threeBad = strings.Replace(threeBad, `"startsAt": "2024-05-01T12:35:01+02:00"`, `"startsAt": "2024-05-01T12:35:01"`, 1)
	tests := []struct {
		name     string
		detector string
		body     string
		hdr      []string
		status   int
		errSub   string
		field    string
	}{
		{"batch with one bad alert", "alertmanager", threeBad, bearer(amKey), 400, "RFC 3339", "alerts[2].startsAt"},
		{"invalid utf8", "generic", "{\"source\":\"\xc3\x28\"}", bearer(genericKey), 400, "UTF-8", ""},
		{"nul byte", "generic", "{\"source\":\"a\x00\"}", bearer(genericKey), 400, "NUL", ""},
		{"unknown generic field", "generic", `{"source":"s","rule":"r","severity":"high","asset":"a","summary":"x","observed_at":"2024-05-01T00:00:00Z","extra":1}`, bearer(genericKey), 400, "unknown field", "extra"},
		{"wrong type", "falco", `{"rule":"r","priority":"Error","time":"2024-05-01T00:00:00Z","output_fields":"x"}`, []string{"X-IRU-Key", falcoKey}, 400, "expected object", "output_fields"},
		{"not json", "alertmanager", `hello`, bearer(amKey), 400, "invalid JSON", ""},
		{"too large", "generic", `{"source":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, bearer(genericKey), 413, "larger than", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post(tt.detector, []byte(tt.body), tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d %v, want %d", r.status, r.body, tt.status)
			}
			msg, _ := r.body["error"].(string)
			field, _ := r.body["field"].(string)
			if !strings.Contains(msg, tt.errSub) || field != tt.field {
				t.Errorf("body %v, want error containing %q and field %q", r.body, tt.errSub, tt.field)
			}
		})
	}
	t.Run("method", func(t *testing.T) {
		resp, err := e.srv.Client().Get(e.srv.URL + "/v1/alerts/generic")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET status %d", resp.StatusCode)
		}
		rec := &statusRecorder{header: http.Header{}}
		e.h.ServeHTTP(rec, mustRequest(t, http.MethodPut, "/v1/alerts/generic"))
		if rec.status != http.StatusMethodNotAllowed {
			t.Errorf("PUT status %d", rec.status)
		}
	})
	if st := e.sp.Stats(); st.Pending != 0 {
		t.Fatalf("%d alerts spooled from bad input", st.Pending)
	}
}

type statusRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return s.body.Write(b) }
func (s *statusRecorder) WriteHeader(code int)        { s.status = code }

func mustRequest(t *testing.T, method, url string) *http.Request {
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAuthFailures(t *testing.T) {
	e := newEnv(t, spool.Options{})
	body := genericAlert("web-1", 1)
	wz := fixture(t, "wazuh_sshd_bruteforce.json")
	replayed := signedHeaders(wz, time.Now())
	if r := e.post("wazuh", wz, replayed...); r.status != http.StatusAccepted {
		t.Fatalf("first signed post: %d %v", r.status, r.body)
	}
	tests := []struct {
		name     string
		detector string
		body     []byte
		hdr      []string
	}{
		{"no key", "generic", body, nil},
		{"wrong key", "generic", body, bearer("guess")},
		{"key of another detector", "generic", body, bearer(amKey)},
		{"unknown detector", "splunk", body, bearer(genericKey)},
		{"bad signature", "wazuh", wz, signedHeaders([]byte(`{}`), time.Now())},
		{"stale timestamp", "wazuh", wz, signedHeaders(wz, time.Now().Add(-10*time.Minute))},
		{"replayed request", "wazuh", wz, replayed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.events.all())
			r := e.post(tt.detector, tt.body, tt.hdr...)
			if r.status != http.StatusUnauthorized || len(r.body) != 1 || r.body["error"] != "unauthorized" {
				t.Fatalf("got %d %v, want 401 {\"error\":\"unauthorized\"}", r.status, r.body)
			}
			ev := e.events.all()
			if len(ev) != before+1 || ev[len(ev)-1].Success || ev[len(ev)-1].Reason == "" {
				t.Errorf("auth events %+v", ev[before:])
			}
		})
	}
	if st := e.h.Stats(); st.Unauthorized != int64(len(tests)) || st.Accepted != 1 {
		t.Errorf("stats %+v", st)
	}
	if ev := e.events.all(); !ev[0].Success || ev[0].KeyID != "w1" {
		t.Errorf("success event %+v", ev[0])
	}
	if st := e.sp.Stats(); st.Pending != 1 {
		t.Errorf("spooled %d, want only the authenticated alert", st.Pending)
	}
}

func TestSpoolFull503(t *testing.T) {
	e := newEnv(t, spool.Options{MaxBytes: 16 << 10, SegmentBytes: 4 << 10})
	accepted := 0
	var full result
	for i := range 1000 {
		r := e.post("generic", genericAlert("web-1", i), bearer(genericKey)...)
		if r.status == http.StatusServiceUnavailable {
			full = r
			break
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("post %d: %d %v", i, r.status, r.body)
		}
		accepted++
	}
	if full.status != http.StatusServiceUnavailable {
		t.Fatal("spool never filled")
	}
	if got := full.header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	// Draining frees room: accepted again.
	mem := newMem()
	e.forward(mem, forward.Options{})
	eventually(t, "drain", 10*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	if r := e.post("generic", genericAlert("web-1", -1), bearer(genericKey)...); r.status != http.StatusAccepted {
		t.Fatalf("after drain: %d %v", r.status, r.body)
	}
	eventually(t, "delivery", 10*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	_, alerts := mem.snapshot()
	if n := len(alerts["incident:container-compromise:web-1"]); n != accepted+1 {
		t.Errorf("delivered %d, want %d (every accepted alert, no refused one)", n, accepted+1)
	}
	if st := e.h.Stats(); st.Unavailable != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestSpoolUnavailable503(t *testing.T) {
	e := newEnv(t, spool.Options{})
	e.sp.Close()
	r := e.post("generic", genericAlert("web-1", 1), bearer(genericKey)...)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("closed spool: %d %v", r.status, r.body)
	}
}

func TestBoundKey(t *testing.T) {
	long := strings.Repeat("é", 400)
	k := boundKey("p:" + long)
	if len(k) > maxKey || !strings.Contains(k, ":#") {
		t.Fatalf("bound key %d bytes: %q", len(k), k)
	}
	if boundKey("p:"+long+"x") == k {
		t.Error("distinct long keys collide")
	}
	if got := boundKey("p:a"); got != "p:a" {
		t.Errorf("short key changed: %q", got)
	}

}
