package intakekeys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/route"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/internal/secretsink"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	overlap = 7 * 24 * time.Hour
	grace   = 30 * 24 * time.Hour
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func key(id, k string, notAfter time.Time) auth.APIKey {
	return auth.APIKey{ID: id, SHA256: auth.HashKey(id, k), NotAfter: notAfter}
}

// startDetectors: generic has a key without end, one that ends before the
// overlap would, one that ends after it, one ended within the grace period and one ended long ago;
// falco has one key; wazuh signs with HMAC and has no API key.
func startDetectors() []auth.Detector {
	return []auth.Detector{
		{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{
			key("g-old", "generic-old", time.Time{}),
			key("g-soon", "generic-soon", t0.Add(time.Hour)),
			key("g-late", "generic-late", t0.Add(30*24*time.Hour)),
			key("g-ended", "generic-ended", t0.Add(-time.Hour)),
			key("g-dead", "generic-dead", t0.Add(-grace-time.Hour)),
		}},
		{Name: "falco", Format: "falco", APIKeys: []auth.APIKey{key("f-old", "falco-old", time.Time{})}},
		{Name: "wazuh", Format: "wazuh", HMACSecrets: []auth.HMACSecret{{ID: "w1", Secret: "wazuh-hmac-secret-0123456789abcdef"}}},
	}
}

// fixture is a detectors file, a secret folder and the activity.
type fixture struct {
	path  string
	sink  secretsink.File
	clock *clock
	logs  *syncBuffer
	acts  *Activities
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{path: filepath.Join(dir, "detectors.yaml"), sink: secretsink.File{Dir: filepath.Join(dir, "secrets")},
		clock: &clock{t: t0}, logs: &syncBuffer{}}
	if err := detectorsfile.Write(f.path, detectorsfile.File{Detectors: startDetectors()}); err != nil {
		t.Fatal(err)
	}
	f.acts = f.with(t, f.sink)
	return f
}

func (f *fixture) with(t *testing.T, sink activities.SecretSink) *Activities {
	t.Helper()
	a, err := New(Config{DetectorsFile: f.path, Overlap: overlap, Grace: grace}, sink)
	if err != nil {
		t.Fatal(err)
	}
	return a.WithClock(f.clock.Now)
}

// run executes the activity in the SDK's activity test environment.
func (f *fixture) run(t *testing.T, a *Activities, in activities.ActionInput) (activities.ActionResult, error) {
	t.Helper()
	env := activitytest.New(slog.NewTextHandler(f.logs, nil))
	env.RegisterActivityWithOptions(a.RotateIntakeKeys, activity.RegisterOptions{Name: activities.KeysRotateIntakeKeys})
	return activitytest.Run[activities.ActionResult](env, activities.KeysRotateIntakeKeys, in)
}

func (f *fixture) load(t *testing.T) detectorsfile.File {
	t.Helper()
	df, err := detectorsfile.Load(f.path)
	if err != nil {
		t.Fatal(err)
	}
	return df
}

func (f *fixture) secret(t *testing.T, ref string) string {
	t.Helper()
	b, err := f.sink.Read(ref)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// secrets lists every secret in the sink as its value.
func (f *fixture) secrets(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(f.sink.Dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out = append(out, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func input(idem string, params map[string]string) activities.ActionInput {
	return activities.ActionInput{Action: activities.KeysRotateIntakeKeys, StepID: "rotate", IdempotencyKey: idem, Params: params}
}

// intakeServer is the real intake handler over the detectors file, with
// the test clock, and the reloader the API server would run.
type intakeServer struct {
	srv *httptest.Server
	rl  *intake.Reloader
}

type assetList []inventory.Asset

func (a assetList) Assets(context.Context) ([]inventory.Asset, error) { return a, nil }

func newIntake(t *testing.T, f *fixture) *intakeServer {
	t.Helper()
	a, err := auth.New(f.load(t).Detectors, auth.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.New(assetList{{Name: "db-1", Node: "pve1", VMID: 101}}, inventory.Options{})
	if err := inv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rules, err := route.Default()
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := intake.NewHandler(intake.Options{Auth: a, Inventory: inv, Rules: rules, Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	rl, err := intake.NewReloader(a, intake.ReloaderOptions{Path: f.path})
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(intake.Pattern, h)
	s := &intakeServer{srv: httptest.NewServer(mux), rl: rl}
	t.Cleanup(func() { s.srv.Close(); sp.Close() })
	return s
}

// post returns the status of a generic alert posted by detector with key.
func (s *intakeServer) post(t *testing.T, detector, key string) int {
	t.Helper()
	body := `{"source":"test","rule":"R","severity":"high","asset":"db-1","summary":"s","observed_at":"2026-03-01T12:00:00Z"}`
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/v1/alerts/"+detector, strings.NewReader(body))
	req.Header.Set(auth.HeaderKey, key)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRotation(t *testing.T) {
	f := newFixture(t)
	in := newIntake(t, f)
	res, err := f.run(t, f.acts, input("wf-1", map[string]string{"reason": "test"}))
	if err != nil {
		t.Fatal(err)
	}
	gid, fid := KeyID("wf-1", "generic"), KeyID("wf-1", "falco")
	if got, want := res.Outputs["rotated"], "generic:"+gid+",falco:"+fid; got != want {
		t.Fatalf("rotated = %q, want %q", got, want)
	}
	genRef, falcoRef := res.Outputs[activities.IntakeKeyRefOutputPrefix+"generic"], res.Outputs[activities.IntakeKeyRefOutputPrefix+"falco"]
	if genRef == "" || falcoRef == "" || res.Outputs[activities.IntakeKeyRefOutputPrefix+"wazuh"] != "" {
		t.Fatalf("outputs %v", res.Outputs)
	}
	genKey, falcoKey := f.secret(t, genRef), f.secret(t, falcoRef)
	if !strings.HasPrefix(genKey, "iru_") || genKey == falcoKey {
		t.Fatal("the secret references do not lead to two new keys")
	}
	if !strings.Contains(genRef, "intake/generic/"+gid+"/") {
		t.Fatalf("secret name of %s: %s", gid, genRef)
	}

	df := f.load(t)
	gen := df.Detectors[df.Detector("generic")]
	ids := []string{}
	for _, k := range gen.APIKeys {
		ids = append(ids, k.ID)
	}
	if !slices.Equal(ids, []string{"g-old", "g-soon", "g-late", "g-ended", gid}) {
		t.Fatalf("generic keys %v: want g-dead dropped and the new key last", ids)
	}
	nk := gen.APIKeys[4]
	if !nk.NotBefore.Equal(t0) || !nk.NotAfter.IsZero() || nk.SecretRef != genRef {
		t.Fatalf("new key entry %+v", nk)
	}
	wantEnd := map[string]time.Time{"g-old": t0.Add(overlap), "g-soon": t0.Add(time.Hour), "g-late": t0.Add(overlap), "g-ended": t0.Add(-time.Hour)}
	for _, k := range gen.APIKeys[:4] {
		if !k.NotAfter.Equal(wantEnd[k.ID]) {
			t.Errorf("%s ends %s, want %s", k.ID, k.NotAfter, wantEnd[k.ID])
		}
	}
	if w := df.Detectors[df.Detector("wazuh")]; len(w.APIKeys) != 0 || len(w.HMACSecrets) != 1 {
		t.Fatalf("wazuh changed: %+v", w)
	}

	// The API server reloads the file; then, over time:
	if changed, err := in.rl.Check(); !changed || err != nil {
		t.Fatalf("reload = %v, %v", changed, err)
	}
	steps := []struct {
		at     time.Time
		key    string
		status int
	}{
		{t0, genKey, http.StatusAccepted},                                   // the new key works at once
		{t0, "generic-old", http.StatusAccepted},                            // the old one still does
		{t0.Add(overlap - time.Second), "generic-old", http.StatusAccepted}, // until the end of the overlap
		{t0.Add(overlap - time.Second), "generic-soon", http.StatusUnauthorized},
		{t0.Add(overlap), "generic-old", http.StatusUnauthorized}, // and no longer
		{t0.Add(overlap), "generic-late", http.StatusUnauthorized},
		{t0.Add(overlap), genKey, http.StatusAccepted},
		{t0.Add(overlap), "generic-dead", http.StatusUnauthorized},
	}
	for _, s := range steps {
		t.Run(fmt.Sprintf("%s+%s", s.key[:min(len(s.key), 12)], s.at.Sub(t0)), func(t *testing.T) {
			f.clock.Set(s.at)
			if got := in.post(t, "generic", s.key); got != s.status {
				t.Fatalf("status %d, want %d", got, s.status)
			}
		})
	}
	f.clock.Set(t0)
	if got := in.post(t, "falco", falcoKey); got == http.StatusUnauthorized {
		t.Fatal("falco's new key refused")
	}
	assertNoKeys(t, f, res, nil)
}

// assertNoKeys checks that no key of the sink shows in the result, the
// error, the logs or the detectors file.
func assertNoKeys(t *testing.T, f *fixture, res activities.ActionResult, err error) {
	t.Helper()
	b, _ := json.Marshal(res)
	file, _ := os.ReadFile(f.path)
	places := map[string]string{"result": string(b), "logs": f.logs.String(), "detectors file": string(file)}
	if err != nil {
		places["error"] = err.Error()
	}
	keys := f.secrets(t)
	if len(keys) == 0 {
		t.Fatal("no secret in the sink to look for")
	}
	for _, k := range keys {
		for where, text := range places {
			if strings.Contains(text, k) || strings.Contains(text, strings.TrimPrefix(k, "iru_")) {
				t.Errorf("a key appears in the %s", where)
			}
		}
	}
}

// crashingSink stores the secret, then fails as if the worker died before
// the detectors file was written.
type crashingSink struct {
	secretsink.File
	stored int
}

func (c *crashingSink) StoreSecret(ctx context.Context, item activities.SecretItem) (string, error) {
	if _, err := c.File.StoreSecret(ctx, item); err != nil {
		return "", err
	}
	c.stored++
	return "", errors.New("worker lost after storing the secret")
}

func TestRetryConverges(t *testing.T) {
	tests := []struct {
		name string
		// first is the attempt that does not complete.
		first func(t *testing.T, f *fixture) error
		// orphans is the number of secrets the first attempt leaves unused.
		orphans int
	}{
		{name: "crash between secret store and file write", orphans: 1, first: func(t *testing.T, f *fixture) error {
			before, _ := os.ReadFile(f.path)
			sink := &crashingSink{File: f.sink}
			_, err := f.run(t, f.with(t, sink), input("wf-crash", map[string]string{"source": "generic"}))
			if err == nil || sink.stored != 1 {
				t.Fatalf("crashed attempt: err %v, stored %d", err, sink.stored)
			}
			if after, _ := os.ReadFile(f.path); !bytes.Equal(before, after) {
				t.Fatal("the crashed attempt changed the detectors file")
			}
			return err
		}},
		{name: "crash after file write", first: func(t *testing.T, f *fixture) error {
			// The attempt completed its work; its result was lost.
			_, err := f.run(t, f.acts, input("wf-crash", map[string]string{"source": "generic"}))
			if err != nil {
				t.Fatal(err)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			firstErr := tt.first(t, f)
			f.clock.Set(t0.Add(time.Minute)) // the retry runs later
			fileBefore, _ := os.ReadFile(f.path)
			res, err := f.run(t, f.acts, input("wf-crash", map[string]string{"source": "generic"}))
			if err != nil {
				t.Fatal(err)
			}
			id := KeyID("wf-crash", "generic")
			if res.Outputs["rotated"] != "generic:"+id {
				t.Fatalf("rotated = %q", res.Outputs["rotated"])
			}
			df := f.load(t)
			gen := df.Detectors[df.Detector("generic")]
			n := 0
			for _, k := range gen.APIKeys {
				if k.ID == id {
					n++
				}
			}
			if n != 1 || len(gen.APIKeys) != 5 {
				t.Fatalf("%d keys %s among %d keys; want one", n, id, len(gen.APIKeys))
			}
			ref := res.Outputs[activities.IntakeKeyRefOutputPrefix+"generic"]
			if ref != gen.APIKeys[4].SecretRef {
				t.Fatalf("returned ref %s, file has %s", ref, gen.APIKeys[4].SecretRef)
			}
			if tt.orphans == 0 {
				if fileAfter, _ := os.ReadFile(f.path); !bytes.Equal(fileBefore, fileAfter) {
					t.Fatal("the retry rewrote a file that already had its key")
				}
			}
			if got := len(f.secrets(t)); got != 1+tt.orphans {
				t.Fatalf("%d secrets in the sink, want %d", got, 1+tt.orphans)
			}
			a, err := auth.New(df.Detectors, auth.Options{Now: f.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range f.secrets(t) {
				r := httptest.NewRequest(http.MethodPost, "/v1/alerts/generic", nil)
				r.Header.Set(auth.HeaderKey, k)
				_, aerr := a.Authenticate(r, "generic", nil)
				if works := aerr == nil; works != (k == f.secret(t, ref)) {
					t.Errorf("a stored key authenticates = %v; only the referenced one may", works)
				}
			}
			assertNoKeys(t, f, res, firstErr)
		})
	}
}

func TestRotationParamsAndPlan(t *testing.T) {
	tests := []struct {
		name    string
		in      func(activities.ActionInput) activities.ActionInput
		errType string
		rotated string
		plan    []string
	}{
		{name: "source only", in: func(in activities.ActionInput) activities.ActionInput {
			in.Params = map[string]string{"source": "falco"}
			return in
		}, rotated: "falco:" + KeyID("idem", "falco")},
		{name: "unknown source", in: func(in activities.ActionInput) activities.ActionInput {
			in.Params = map[string]string{"source": "splunk"}
			return in
		}, errType: activities.ErrTypeNotFound},
		{name: "source without api keys", in: func(in activities.ActionInput) activities.ActionInput {
			in.Params = map[string]string{"source": "wazuh"}
			return in
		}, errType: activities.ErrTypePrecondition},
		{name: "no idempotency key", in: func(in activities.ActionInput) activities.ActionInput {
			in.IdempotencyKey = ""
			return in
		}, errType: activities.ErrTypeBadParams},
		{name: "live drill", in: func(in activities.ActionInput) activities.ActionInput {
			in.Drill = true
			return in
		}, errType: activities.ErrTypePrecondition},
		{name: "dry run", in: func(in activities.ActionInput) activities.ActionInput {
			in.DryRun = true
			return in
		}, plan: []string{"detector generic: mint key " + KeyID("idem", "generic"), "end 2 older key(s)", "drop 1 key(s)", "detector falco: mint key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			before, _ := os.ReadFile(f.path)
			res, err := f.run(t, f.acts, tt.in(input("idem", nil)))
			if tt.errType != "" {
				var ae *temporal.ApplicationError
				if !errors.As(err, &ae) || ae.Type() != tt.errType || !ae.NonRetryable() {
					t.Fatalf("error %v, want final %s", err, tt.errType)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if res.Outputs["rotated"] != tt.rotated {
				t.Fatalf("rotated = %q, want %q", res.Outputs["rotated"], tt.rotated)
			}
			plan := strings.Join(res.Plan, "\n")
			for _, p := range tt.plan {
				if !strings.Contains(plan, p) {
					t.Errorf("plan lacks %q:\n%s", p, plan)
				}
			}
			after, _ := os.ReadFile(f.path)
			if tt.rotated == "" && (!bytes.Equal(before, after) || len(f.secrets(t)) != 0) {
				t.Fatal("changed the file or stored a secret without rotating")
			}
			if tt.rotated != "" && bytes.Equal(before, after) {
				t.Fatal("rotated without changing the file")
			}
		})
	}
}

func TestRotationNeedsAFile(t *testing.T) {
	f := newFixture(t)
	os.Remove(f.path)
	_, err := f.run(t, f.acts, input("idem", nil))
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypePrecondition {
		t.Fatalf("error %v, want Precondition", err)
	}
	if _, err := os.Stat(f.path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a rotation created a detectors file")
	}
	a, err := New(Config{}, f.sink)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.run(t, a, input("idem", nil)); !errors.As(err, &ae) || ae.Type() != activities.ErrTypePrecondition {
		t.Fatalf("no file configured: %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	a, err := New(Config{DetectorsFile: "x"}, secretsink.File{Dir: t.TempDir()})
	if err != nil || a.cfg.Overlap != DefaultOverlap {
		t.Fatalf("New = %+v, %v", a, err)
	}
	if _, err := New(Config{Overlap: -time.Hour}, secretsink.File{}); err == nil {
		t.Fatal("negative overlap accepted")
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("no sink accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Overlap: time.Hour}, ""},
		{Config{}, "IRU_INTAKE_KEY_OVERLAP"},
		{Config{Overlap: time.Hour, Grace: -1}, "IRU_INTAKE_KEY_GRACE"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
