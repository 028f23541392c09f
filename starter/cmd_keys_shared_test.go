//go:build integration

package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/sharedstate/sharedtest"
)

// TestKeysSharedStore: with IRU_SHARED_STATE_DSN set, `starter keys
// add-detector` writes the detector to the store every API server reads
// (not to a file, even with IRU_INTAKE_DETECTORS_FILE set) and the key it
// prints authenticates against the store's detectors; `starter keys
// import-detectors` copies a file's detectors in and keeps those already
// there.
func TestKeysSharedStore(t *testing.T) {
	cfg := sharedtest.Config(t)
	t.Setenv("IRU_SHARED_STATE_DSN", cfg.DSN)
	t.Setenv("IRU_SHARED_STATE_SCHEMA", cfg.Schema)
	file := filepath.Join(t.TempDir(), "detectors.yaml")
	t.Setenv("IRU_INTAKE_DETECTORS_FILE", file)
	out, _, err := runStarter(t, "keys", "add-detector", "alertmanager", "--format", "alertmanager")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out)
	st := sharedtest.Open(t, cfg)
	df, err := st.Load(context.Background())
	if err != nil || len(df.Detectors) != 1 || df.Detectors[0].Name != "alertmanager" {
		t.Fatalf("store after add-detector: %+v, %v", df, err)
	}
	a, err := auth.New(df.Detectors, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/v1/alerts/alertmanager", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	if _, err := a.Authenticate(r, "alertmanager", nil); err != nil {
		t.Fatalf("the printed key does not authenticate against the store: %v", err)
	}
	if _, err := detectorsfile.Load(file); err == nil {
		t.Error("add-detector wrote the detectors file although the shared store is configured")
	}

	imp := detectorsfile.File{Detectors: []auth.Detector{
		{Name: "alertmanager", Format: "generic", APIKeys: []auth.APIKey{{ID: "other", SHA256: auth.HashKey("other", "x")}}},
		{Name: "falco", Format: "falco", HMACSecrets: []auth.HMACSecret{{ID: "h1", Secret: "falco-hmac-secret-0123456789abcdefgh"}}},
	}}
	src := filepath.Join(t.TempDir(), "import.yaml")
	if err := detectorsfile.Write(src, imp); err != nil {
		t.Fatal(err)
	}
	if out, _, err = runStarter(t, "keys", "import-detectors", src); err != nil || !strings.Contains(out, "1 detector(s) added") {
		t.Fatalf("import: %q, %v", out, err)
	}
	df, err = st.Load(context.Background())
	if err != nil || len(df.Detectors) != 2 {
		t.Fatalf("store after import: %+v, %v", df, err)
	}
	if d := df.Detectors[df.Detector("alertmanager")]; d.Format != "alertmanager" {
		t.Errorf("import replaced the detector the store held: %+v", d)
	}
	if d := df.Detectors[df.Detector("falco")]; len(d.HMACSecrets) != 1 || d.HMACSecrets[0].Secret != imp.Detectors[1].HMACSecrets[0].Secret {
		t.Errorf("imported detector lost its HMAC secret: %+v", d)
	}
}
