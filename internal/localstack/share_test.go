//go:build localstack && integration

package localstack

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/iru-responder/responder/internal/config"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/sharedstate"
)

// TestShareState: in cluster mode the local detectors file moves into the
// shared store on the cluster's PostgreSQL, the processes' environment
// names the store instead of the file, and a second start keeps what the
// store holds (a rotation made since is not undone by the file).
func TestShareState(t *testing.T) {
	ctx := context.Background()
	// The cluster's database here is the local test database; the schema
	// is the cluster mode's own, dropped at the end.
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatalf("PostgreSQL unreachable (the test needs the local server): %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	drop := func() {
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+sharedSchema+" CASCADE"); err != nil {
			t.Fatal(err)
		}
	}
	drop()
	t.Cleanup(drop)
	dir := t.TempDir()
	file := filepath.Join(dir, "detectors.yaml")
	first := intakeauth.Detector{Name: "alertmanager", Format: "alertmanager", APIKeys: []intakeauth.APIKey{{ID: "local", SHA256: intakeauth.HashKey("local", "k")}}}
	if err := detectorsfile.Write(file, detectorsfile.File{Detectors: []intakeauth.Detector{first}}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s := &stack{cfg: Config{}, out: &out, clusterCfg: &config.Cluster{DBHost: "127.0.0.1", DBPort: 5432, DBUser: "postgres", DBName: "test"}}
	s.cfg.StateDir = dir
	if err := s.shareState(ctx); err != nil {
		t.Fatal(err)
	}
	// The processes read the last value of a variable.
	last := map[string]string{}
	for _, kv := range s.env {
		k, v, _ := strings.Cut(kv, "=")
		last[k] = v
	}
	if !strings.HasPrefix(last["IRU_SHARED_STATE_DSN"], "postgres://postgres@127.0.0.1:5432/test") || last["IRU_INTAKE_DETECTORS_FILE"] != "" ||
		last["IRU_SHARED_STATE_SCHEMA"] != sharedSchema {
		t.Errorf("environment: %q", s.env)
	}
	st, err := sharedstate.Open(ctx, sharedstate.Config{DSN: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", Schema: sharedSchema, Poll: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A rotation in the store, then a second start: the store's version stays.
	err = st.Update(ctx, func(f *detectorsfile.File) (bool, error) {
		f.Detectors[0].APIKeys = append(f.Detectors[0].APIKeys, intakeauth.APIKey{ID: "rotated", SHA256: intakeauth.HashKey("rotated", "k2")})
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.shareState(ctx); err != nil {
		t.Fatal(err)
	}
	df, err := st.Load(ctx)
	if err != nil || len(df.Detectors) != 1 || len(df.Detectors[0].APIKeys) != 2 {
		t.Fatalf("store after the second start: %+v %v", df, err)
	}
}
