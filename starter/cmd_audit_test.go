package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/stores"
)

// storesFixture is a temporary SQLite ledger, evidence locker and SoftHSM
// token, configured through the environment like the real commands.
type storesFixture struct {
	kcfg       keys.Config
	cfg        stores.Config
	incident   string
	refs       []evidence.Ref
	bodies     map[evidence.Ref]string
	evidenceAt string
}

// openStores opens the fixture's HSM keys and stores; the returned func
// closes both (callers close them before the CLI opens the same files).
func (f *storesFixture) openStores(t *testing.T) (*stores.Stores, *keys.Manager, func()) {
	t.Helper()
	km, err := keys.Open(f.kcfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stores.Open(context.Background(), f.cfg, km)
	if err != nil {
		_ = km.Close()
		t.Fatal(err)
	}
	return st, km, func() { _ = st.Close(); _ = km.Close() }
}

// newStoresFixture seeds incident INC-42 with five ledger entries (a signed
// checkpoint over the first four) and two evidence objects.
func newStoresFixture(t *testing.T) *storesFixture {
	t.Helper()
	dir := t.TempDir()
	f := &storesFixture{kcfg: hsmtest.Config(t), incident: "INC-42", bodies: map[evidence.Ref]string{}, evidenceAt: filepath.Join(dir, "evidence")}
	f.cfg = stores.Config{
		Ledger: ledger.Config{Driver: ledger.DriverSQLite, SQLitePath: filepath.Join(dir, "ledger.db"), AppRole: "iru_ledger_app"},
		Evidence: evidence.Config{Dir: f.evidenceAt, RetentionPII: time.Hour, RetentionFinancial: time.Hour,
			RetentionOperational: time.Hour},
	}
	for k, v := range map[string]string{
		"IRU_ENV_FILE": "", "IRU_HSM_MODULE": f.kcfg.Module, "IRU_HSM_TOKEN_LABEL": f.kcfg.TokenLabel, "IRU_HSM_PIN": f.kcfg.PIN,
		"IRU_LEDGER_DRIVER": "sqlite", "IRU_LEDGER_SQLITE_PATH": f.cfg.Ledger.SQLitePath, "IRU_EVIDENCE_DIR": f.evidenceAt,
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	st, _, closeStores := f.openStores(t)
	defer closeStores()
	for seq := int64(1); seq <= 5; seq++ {
		if _, err := st.Ledger.Append(ctx, ledger.AppendRequest{Incident: f.incident, Seq: seq, Actor: "system:workflow",
			Action: "step", Target: "drill-canary", Params: map[string]int64{"seq": seq}, Outcome: ledger.Outcome{Status: "succeeded"},
			IdempotencyKey: "k" + string(rune('0'+seq))}); err != nil {
			t.Fatal(err)
		}
		if seq == 4 {
			if _, err := st.Ledger.Checkpoint(ctx, f.incident, st.Signer); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, body := range []string{"ps aux output", "auth.log lines"} {
		ref, err := st.Evidence.Put(ctx, evidence.PutRequest{Incident: f.incident, Name: []string{"ps.txt", "auth.log"}[i],
			Class: evidence.ClassOperational, MediaType: "text/plain", CollectedBy: "system:worker", Source: "pve:pve1/lxc/901",
			Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		f.refs = append(f.refs, ref)
		f.bodies[ref] = body
	}
	return f
}

// runCLI runs the starter with args and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// wantExit checks err's exit status (0: no error).
func wantExit(t *testing.T, err error, code int, out string) {
	t.Helper()
	got := 0
	if err != nil {
		got = exitCode(err)
	}
	if got != code {
		t.Fatalf("exit status %d (%v), want %d; output:\n%s", got, err, code, out)
	}
}

// tamper runs SQL against the ledger file as an attacker with file access
// would: dropping the append-only triggers first.
func (f *storesFixture) tamper(t *testing.T, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", ledger.SQLiteDSN(f.cfg.Ledger.SQLitePath))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestAuditVerify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper []string
		code   int
		want   string
	}{
		{name: "intact", want: "ok: incident INC-42: 5 entries, head seq 5"},
		{name: "entry changed", tamper: []string{"DROP TRIGGER ledger_entries_no_update",
			"UPDATE ledger_entries SET actor = 'system:attacker' WHERE incident_id = 'INC-42' AND seq = 2"},
			code: 1, want: "first broken entry: seq 2 (hash_mismatch)"},
		{name: "entry deleted", tamper: []string{"DROP TRIGGER ledger_entries_no_delete",
			"DELETE FROM ledger_entries WHERE incident_id = 'INC-42' AND seq = 3"},
			code: 1, want: "first broken entry: seq 3 (gap)"},
		{name: "checkpoint forged", tamper: []string{"DROP TRIGGER ledger_checkpoints_no_update",
			"UPDATE ledger_checkpoints SET signature = zeroblob(length(signature)) WHERE incident_id = 'INC-42'"},
			code: 1, want: "first broken entry: seq 4 (bad_signature)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newStoresFixture(t)
			f.tamper(t, tc.tamper...)
			out, err := runCLI(t, "audit", "verify", f.incident)
			wantExit(t, err, tc.code, out)
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q lacks %q", out, tc.want)
			}
			if tc.code == 0 && !strings.Contains(out, "entries 5 to 5 are chained but not yet covered") {
				t.Errorf("output %q does not name the unsigned tail", out)
			}
		})
	}
	t.Run("unknown incident", func(t *testing.T) {
		newStoresFixture(t)
		out, err := runCLI(t, "audit", "verify", "INC-404")
		wantExit(t, err, 1, out)
	})
	t.Run("no HSM PIN", func(t *testing.T) {
		newStoresFixture(t)
		t.Setenv("IRU_HSM_PIN", "")
		out, err := runCLI(t, "audit", "verify", "INC-42")
		wantExit(t, err, 2, out)
		if !strings.Contains(err.Error(), "IRU_HSM_PIN") {
			t.Errorf("err = %v, want it to name IRU_HSM_PIN", err)
		}
	})
}

func TestAuditExport(t *testing.T) {
	f := newStoresFixture(t)
	path := filepath.Join(t.TempDir(), "INC-42.jsonl")
	out, err := runCLI(t, "audit", "export", f.incident, "-o", path)
	wantExit(t, err, 0, out)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 6 {
		t.Errorf("export has %d lines, want 5 entries and 1 checkpoint", n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode: %v, %v", fi.Mode(), err)
	}
	km, err := keys.Open(f.kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = km.Close() }()
	rep, err := ledger.VerifyExport(context.Background(), f.incident, bytes.NewReader(b), stores.Signer{M: km})
	if err != nil || rep.Entries != 5 || rep.CheckpointSeq != 4 {
		t.Errorf("exported chain: %+v, %v", rep, err)
	}
	// To standard output as well.
	out, err = runCLI(t, "audit", "export", f.incident)
	wantExit(t, err, 0, out)
	if out != string(b) {
		t.Errorf("stdout export differs from the file export")
	}
}
