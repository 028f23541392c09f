package housekeeping_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities/housekeeping"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
	"github.com/iru-responder/responder/workflows"
)

// clock is a settable clock shared by the ledger, the locker and the
// activities.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// fixture is the real ledger (SQLite), the real evidence locker and the
// HSM (SoftHSM2) the worker would use, on a clock the test controls.
type fixture struct {
	ctx      context.Context
	clock    *clock
	dir      string
	ledger   *ledger.Ledger
	locker   *evidence.Locker
	signer   stores.Signer
	acts     *housekeeping.Activities
	dbPath   string
	evidence string
}

func newFixture(t *testing.T, start time.Time) *fixture {
	t.Helper()
	f := &fixture{ctx: context.Background(), clock: &clock{t: start}, dir: t.TempDir()}
	km, err := keys.Open(hsmtest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = km.Close() })
	f.dbPath = filepath.Join(f.dir, "ledger.db")
	st, err := ledger.OpenSQLite(f.ctx, f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f.ledger = ledger.New(st, f.clock.Now)
	f.evidence = filepath.Join(f.dir, "evidence")
	f.locker, err = evidence.Open(f.evidence, stores.KEK{M: km}, evidence.Options{Now: f.clock.Now,
		Retention: map[evidence.Class]time.Duration{evidence.ClassPII: time.Hour, evidence.ClassOperational: 48 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	f.signer = stores.Signer{M: km}
	f.acts = &housekeeping.Activities{Ledger: f.ledger, Signer: f.signer, Evidence: f.locker, Now: f.clock.Now}
	return f
}

// sign runs SignDailyChains in Temporal's activity test environment.
func (f *fixture) sign(t *testing.T, in housekeeping.SignDailyChainsInput) (housekeeping.SignDailyChainsResult, error) {
	var out housekeeping.SignDailyChainsResult
	return out, f.exec(t, workflows.SignDailyChainsActivity, in, &out)
}

// sweep runs SweepEvidence in Temporal's activity test environment.
func (f *fixture) sweep(t *testing.T, in housekeeping.SweepEvidenceInput) (housekeeping.SweepEvidenceResult, error) {
	var out housekeeping.SweepEvidenceResult
	return out, f.exec(t, workflows.SweepEvidenceActivity, in, &out)
}

func (f *fixture) exec(t *testing.T, name string, in, out any) error {
	t.Helper()
	env := activitytest.New(nil)
	env.RegisterActivityWithOptions(f.acts.SignDailyChains, activity.RegisterOptions{Name: workflows.SignDailyChainsActivity})
	env.RegisterActivityWithOptions(f.acts.SweepEvidence, activity.RegisterOptions{Name: workflows.SweepEvidenceActivity})
	v, err := env.ExecuteActivity(name, in)
	if err != nil {
		return err
	}
	if err := v.Get(out); err != nil {
		t.Fatal(err)
	}
	return nil
}

// record appends n access-log entries to the day of the clock, as the API
// server's access log does.
func (f *fixture) record(t *testing.T, n int) {
	t.Helper()
	for range n {
		if _, err := housekeeping.AppendNext(f.ctx, f.ledger, ledger.AppendRequest{Incident: accesslog.Chain(f.clock.Now()), Time: f.clock.Now(),
			Actor: "keycloak:iru/bob", Action: accesslog.ActionRequest, Target: "GET /api/v1/incidents", Params: map[string]string{"n": "x"},
			Outcome: ledger.Outcome{Status: ledger.StatusOK, Detail: "status=200"}, IdempotencyKey: "access/" + time.Now().Format(time.RFC3339Nano)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSignDailyChains(t *testing.T) {
	day1 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	f := newFixture(t, day1)
	f.record(t, 3)
	f.clock.Set(day1.AddDate(0, 0, 1)) // 12-04: a day without the platform signing
	f.record(t, 2)
	f.clock.Set(time.Date(2026, 12, 5, 0, 10, 0, 0, time.UTC)) // the schedule's time on 12-05
	f.record(t, 1)                                             // today's chain: not ended, not signed

	// Before the run: the daily chain verifies, but nothing signs it yet.
	rep, err := f.ledger.Verify(f.ctx, "access:2026-12-03", f.signer)
	if err != nil || rep.Checkpoints != 0 || rep.Entries != 3 {
		t.Fatalf("before: %+v, %v", rep, err)
	}

	res, err := f.sign(t, housekeeping.SignDailyChainsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chains) != 2 || res.Chains[0].Chain != "access:2026-12-03" || res.Chains[0].Seq != 3 || res.Chains[1].Chain != "access:2026-12-04" ||
		res.Chains[1].Seq != 2 || res.Chains[0].Already || res.Chains[0].KeyID == "" {
		t.Fatalf("signed %+v, want 12-03 (3 entries) and 12-04 (2 entries)", res.Chains)
	}
	for chain, head := range map[string]int64{"access:2026-12-03": 3, "access:2026-12-04": 2} {
		rep, err := f.ledger.Verify(f.ctx, chain, f.signer)
		if err != nil || rep.Checkpoints != 1 || rep.CheckpointSeq != head || rep.HeadSeq != head {
			t.Errorf("%s after signing: %+v, %v", chain, rep, err)
		}
	}
	if rep, _ := f.ledger.Verify(f.ctx, "access:2026-12-05", f.signer); rep.Checkpoints != 0 {
		t.Errorf("today's chain was signed before the day ended: %+v", rep)
	}

	// Idempotent: a second run signs nothing new.
	res, err = f.sign(t, housekeeping.SignDailyChainsInput{})
	if err != nil || len(res.Chains) != 2 || !res.Chains[0].Already || !res.Chains[1].Already {
		t.Fatalf("second run %+v, %v", res, err)
	}
	// A late entry for 12-04 is signed by the next run.
	f.clock.Set(time.Date(2026, 12, 4, 23, 59, 59, 0, time.UTC))
	f.record(t, 1)
	f.clock.Set(time.Date(2026, 12, 5, 0, 10, 0, 0, time.UTC))
	res, err = f.sign(t, housekeeping.SignDailyChainsInput{Day: "2026-12-04"})
	if err != nil || len(res.Chains) != 1 || res.Chains[0].Already || res.Chains[0].Seq != 3 {
		t.Fatalf("late entry run %+v, %v", res, err)
	}
	if rep, err := f.ledger.Verify(f.ctx, "access:2026-12-04", f.signer); err != nil || rep.Checkpoints != 2 || rep.CheckpointSeq != 3 {
		t.Errorf("12-04 after the late entry: %+v, %v", rep, err)
	}
	if _, err := f.sign(t, housekeeping.SignDailyChainsInput{Day: "2026-12-05"}); err == nil {
		t.Error("signing today was accepted")
	}
}

func TestSweepEvidence(t *testing.T) {
	start := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	f := newFixture(t, start)
	put := func(name string, class evidence.Class) evidence.Ref {
		ref, err := f.locker.Put(f.ctx, evidence.PutRequest{Incident: "INC-7", Name: name, Class: class, MediaType: "text/plain",
			CollectedBy: "system:worker", Source: "kc:iru/users", Body: strings.NewReader("content of " + name)})
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	pii1, pii2, ops := put("users.json", evidence.ClassPII), put("sessions.json", evidence.ClassPII), put("ps.txt", evidence.ClassOperational)
	read := func(ref evidence.Ref) error {
		rc, _, err := f.locker.Get(f.ctx, ref, evidence.Reader{Identity: "system:test", Reason: "check"})
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}
	keyFiles := func() []string {
		m, _ := filepath.Glob(filepath.Join(f.evidence, "blobs", "INC-7", "*.key"))
		return m
	}
	chain := accesslog.Chain(start.Add(2 * time.Hour))
	f.clock.Set(start.Add(2 * time.Hour)) // the pii retention (1 h) ended, the operational one (48 h) did not

	// Dry run: lists the two pii objects, changes nothing.
	custody, _ := f.locker.Manifest(f.ctx, "INC-7")
	res, err := f.sweep(t, housekeeping.SweepEvidenceInput{DryRun: true})
	if err != nil || res.Count != 2 || !res.DryRun || res.Objects[0].Ref != string(pii1) || res.Objects[1].Ref != string(pii2) {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if after, _ := f.locker.Manifest(f.ctx, "INC-7"); len(after.Events) != len(custody.Events) || after.Head != custody.Head {
		t.Errorf("the dry run changed the custody log: %d → %d events", len(custody.Events), len(after.Events))
	}
	if _, err := f.ledger.Store().Head(f.ctx, chain); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("the dry run wrote to the ledger: %v", err)
	}
	if len(keyFiles()) != 3 {
		t.Errorf("the dry run removed data keys: %v", keyFiles())
	}
	for _, ref := range []evidence.Ref{pii1, pii2} {
		if err := read(ref); err != nil {
			t.Errorf("after the dry run %s is unreadable: %v", ref, err)
		}
	}

	// The sweep: both pii objects are shredded, one ledger entry each.
	res, err = f.sweep(t, housekeeping.SweepEvidenceInput{})
	if err != nil || res.Count != 2 || res.DryRun {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	for _, ref := range []evidence.Ref{pii1, pii2} {
		if err := read(ref); !errors.Is(err, evidence.ErrDeleted) {
			t.Errorf("%s after the sweep: %v, want ErrDeleted", ref, err)
		}
	}
	if err := read(ops); err != nil {
		t.Errorf("the operational object, still retained, is unreadable: %v", err)
	}
	if k := keyFiles(); len(k) != 1 {
		t.Errorf("wrapped data keys left: %v, want only the operational object's", k)
	}
	var rows []ledger.Entry
	if err := f.ledger.Store().Entries(f.ctx, chain, func(e ledger.Entry) error { rows = append(rows, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("ledger rows in %s: %d, want one per destroyed object", chain, len(rows))
	}
	for i, ref := range []evidence.Ref{pii1, pii2} {
		e := rows[i]
		if e.Action != housekeeping.ActionEvidenceDestroyed || e.Target != string(ref) || e.Actor != evidence.SweeperIdentity ||
			!strings.Contains(e.Outcome.Detail, "shredded") || res.Objects[i].LedgerSeq != e.Seq || res.Objects[i].LedgerChain != chain {
			t.Errorf("row %d = %+v (result %+v)", i, e, res.Objects[i])
		}
	}
	if rep, err := f.ledger.Verify(f.ctx, chain, f.signer); err != nil || rep.Entries != 2 {
		t.Errorf("the chain with the destruction rows: %+v, %v", rep, err)
	}
	// A second sweep finds nothing and writes nothing.
	if res, err := f.sweep(t, housekeeping.SweepEvidenceInput{}); err != nil || res.Count != 0 {
		t.Errorf("second sweep = %+v, %v", res, err)
	}
	if h, _ := f.ledger.Store().Head(f.ctx, chain); h.Seq != 2 {
		t.Errorf("the second sweep wrote to the ledger: head %d", h.Seq)
	}
}

// TestSweepStopsWhenTheLedgerFails makes the ledger refuse the record of
// the first destruction: the sweep stops there, so no second object is
// destroyed without its ledger entry.
func TestSweepStopsWhenTheLedgerFails(t *testing.T) {
	start := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	f := newFixture(t, start)
	for _, name := range []string{"a.json", "b.json"} {
		if _, err := f.locker.Put(f.ctx, evidence.PutRequest{Incident: "INC-8", Name: name, Class: evidence.ClassPII, MediaType: "text/plain",
			CollectedBy: "system:worker", Source: "test", Body: strings.NewReader(name)}); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Set(start.Add(2 * time.Hour))
	_ = f.ledger.Store().Close() // the ledger is down
	res, err := f.sweep(t, housekeeping.SweepEvidenceInput{})
	if err == nil {
		t.Fatal("the sweep succeeded without its ledger")
	}
	if m, _ := f.locker.Manifest(f.ctx, "INC-8"); !m.Objects[0].Deleted || m.Objects[1].Deleted {
		t.Errorf("objects deleted: %v %v, want only the first (the sweep stops at the failed record); result %+v", m.Objects[0].Deleted, m.Objects[1].Deleted, res)
	}
	if _, err := os.Stat(f.evidence); err != nil {
		t.Fatal(err)
	}
}
