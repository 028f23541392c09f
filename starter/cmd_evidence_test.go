package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/stores"
)

// manifest reads the fixture's custody log with a fresh HSM session.
func (f *storesFixture) manifest(t *testing.T) evidence.Manifest {
	t.Helper()
	km, err := keys.Open(f.kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = km.Close() }()
	l, err := evidence.Open(f.evidenceAt, stores.KEK{M: km}, f.cfg.Evidence.Options())
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.Manifest(context.Background(), f.incident)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEvidenceListGetVerify(t *testing.T) {
	f := newStoresFixture(t)
	out, err := runCLI(t, "evidence", "list", f.incident)
	wantExit(t, err, 0, out)
	for _, ref := range f.refs {
		if !strings.Contains(out, string(ref)) {
			t.Errorf("list output lacks %s:\n%s", ref, out)
		}
	}
	if !strings.Contains(out, "ps.txt  operational  13 bytes  text/plain") {
		t.Errorf("list output lacks the object's details:\n%s", out)
	}

	path := filepath.Join(t.TempDir(), "ps.txt")
	out, err = runCLI(t, "evidence", "get", string(f.refs[0]), "-o", path, "--reason", "triage of the canary drill")
	wantExit(t, err, 0, out)
	b, err := os.ReadFile(path)
	if err != nil || string(b) != f.bodies[f.refs[0]] {
		t.Fatalf("got %q, %v; want %q", b, err, f.bodies[f.refs[0]])
	}
	m := f.manifest(t)
	last := m.Events[len(m.Events)-1]
	if last.Kind != evidence.EventRead || last.Actor != cliIdentity() || last.Reason != "triage of the canary drill" ||
		!strings.HasPrefix(last.Actor, "system:cli:") {
		t.Errorf("custody log's last event = %+v, want a read by %s with the reason", last, cliIdentity())
	}

	// A reason is required, and nothing is read without one.
	out, err = runCLI(t, "evidence", "get", string(f.refs[0]), "-o", path)
	wantExit(t, err, 2, out)
	if n := len(f.manifest(t).Events); n != len(m.Events) {
		t.Errorf("a refused get changed the custody log (%d → %d events)", len(m.Events), n)
	}

	out, err = runCLI(t, "evidence", "verify", f.incident)
	wantExit(t, err, 0, out)
	if !strings.Contains(out, "ok: incident INC-42:") || !strings.Contains(out, "2 objects") {
		t.Errorf("verify output = %q", out)
	}
}

func TestEvidenceVerifyMismatch(t *testing.T) {
	f := newStoresFixture(t)
	objs, err := filepath.Glob(filepath.Join(f.evidenceAt, "blobs", f.incident, "*.obj"))
	if err != nil || len(objs) != 2 {
		t.Fatalf("object files %v, %v", objs, err)
	}
	// Flip one byte of one encrypted object, as an attacker with disk access.
	if err := os.Chmod(objs[0], 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(objs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-5] ^= 0x01
	if err := os.WriteFile(objs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "evidence", "verify", f.incident)
	wantExit(t, err, 1, out)
	if !strings.Contains(out, "MISMATCH: incident INC-42: 1 problem(s)") || !strings.Contains(out, "evidence://INC-42/sha256:") {
		t.Errorf("verify output = %q, want the mismatching object named", out)
	}
	// Reading the tampered object fails and leaves no file behind.
	for _, ref := range f.refs {
		path := filepath.Join(t.TempDir(), "out")
		out, err := runCLI(t, "evidence", "get", string(ref), "-o", path, "--reason", "check tampering")
		if err == nil {
			continue // the intact object
		}
		wantExit(t, err, 1, out)
		if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
			t.Errorf("a get that failed verification left %s behind", path)
		}
		return
	}
	t.Error("both objects read back although one was tampered with")
}
