package keyops

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/stores"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

// watchedKeys wraps the key manager and checks, whenever a KEK is retired,
// that no store still holds a key under another version.
type watchedKeys struct {
	*keys.Manager
	t       *testing.T
	stores  []Store
	retired []string
}

func (w *watchedKeys) RetireKEK(ctx context.Context, id string) error {
	current, err := w.CurrentKEK(ctx)
	if err != nil {
		return err
	}
	for _, s := range w.stores {
		stale, err := s.Keys.StaleWrappedKeys(ctx, current, math.MaxInt)
		if err != nil {
			return err
		}
		if len(stale) > 0 {
			w.t.Errorf("retiring %s while %d %s keys are not under %s", id, len(stale), s.Name, current)
		}
	}
	w.retired = append(w.retired, id)
	return w.Manager.RetireKEK(ctx, id)
}

// fixture is an HSM token, a codec key store and an evidence locker with
// keys wrapped under the first KEK.
type fixture struct {
	t        *testing.T
	m        *keys.Manager
	codec    *codec.FileKeyStore
	locker   *evidence.Locker
	evKeys   *EvidenceKeys
	deks     map[string][]byte // codec key id → plaintext key
	evidence map[evidence.Ref][]byte
	act      *Activities
	watch    *watchedKeys
}

func newFixture(t *testing.T, codecKeys, objects int) *fixture {
	t.Helper()
	m, _ := hsmtest.Manager(t)
	ctx := context.Background()
	f := &fixture{t: t, m: m, deks: map[string][]byte{}, evidence: map[evidence.Ref][]byte{}}
	var err error
	if f.codec, err = codec.NewFileKeyStore(filepath.Join(t.TempDir(), "codec-keys")); err != nil {
		t.Fatal(err)
	}
	for i := range codecKeys {
		dek := make([]byte, 32)
		_, _ = rand.Read(dek)
		w, err := m.Wrap(ctx, dek)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("dk-20250101T000000Z-%08x", i)
		if err := f.codec.Add(codec.StoredDataKey{ID: id, Wrapped: w, Created: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
		f.deks[id] = dek
	}
	dir := t.TempDir()
	if f.locker, err = evidence.Open(dir, stores.KEK{M: m}, evidence.Options{}); err != nil {
		t.Fatal(err)
	}
	for i := range objects {
		body := fmt.Appendf(nil, "evidence object %d", i)
		ref, err := f.locker.Put(ctx, evidence.PutRequest{Incident: fmt.Sprintf("INC-%d", i%3), Name: fmt.Sprintf("log-%d.txt", i),
			Class: evidence.ClassOperational, MediaType: "text/plain", CollectedBy: "system:test", Source: "test", Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		f.evidence[ref] = body
	}
	if f.evKeys, err = NewEvidenceKeys(dir); err != nil {
		t.Fatal(err)
	}
	st := []Store{{Name: "codec", Keys: f.codec}, {Name: "evidence", Keys: f.evKeys}}
	f.watch = &watchedKeys{Manager: m, t: t, stores: st}
	f.act = &Activities{Keys: f.watch, Stores: st}
	return f
}

// check asserts every key is under want and still opens to its plaintext.
func (f *fixture) check(want string) {
	f.t.Helper()
	ctx := context.Background()
	all, err := f.codec.List()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range all {
		if k.Wrapped.KeyID != want {
			f.t.Errorf("codec key %s is under %s, want %s", k.ID, k.Wrapped.KeyID, want)
		}
		dek, err := f.m.Unwrap(ctx, k.Wrapped)
		if err != nil || !bytes.Equal(dek, f.deks[k.ID]) {
			f.t.Errorf("codec key %s does not unwrap to its key: %v", k.ID, err)
		}
	}
	stale, err := f.evKeys.StaleWrappedKeys(ctx, want, math.MaxInt)
	if err != nil || len(stale) > 0 {
		f.t.Errorf("%d evidence keys not under %s (%v)", len(stale), want, err)
	}
	for ref, body := range f.evidence {
		rc, _, err := f.locker.Get(ctx, ref, evidence.Reader{Identity: "system:test", Reason: "check rewrap"})
		if err != nil {
			f.t.Errorf("get %s: %v", ref, err)
			continue
		}
		got, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil || !bytes.Equal(got, body) {
			f.t.Errorf("evidence %s reads %q, %v", ref, got, err)
		}
	}
}

func (f *fixture) kekIDs() []string {
	f.t.Helper()
	keks, err := f.m.KEKs(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, k := range keks {
		out = append(out, k.ID)
	}
	return out
}

func rotateInput() activities.ActionInput {
	return activities.ActionInput{IncidentID: "INC-9", StepID: "rotate_kek", Action: activities.KeysRotateKEK,
		Params: map[string]string{"key_label": "iru-kek", "reason": "test"}, IdempotencyKey: "INC-9/rotate_kek"}
}

func TestRotateKEK(t *testing.T) {
	f := newFixture(t, 5, 7)
	env := activitytest.New(nil)
	env.RegisterActivity(f.act.RotateKEK)
	var mu sync.Mutex
	var beats []Progress
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var p Progress
		if err := details.Get(&p); err != nil {
			t.Errorf("heartbeat details: %v", err)
		}
		mu.Lock()
		beats = append(beats, p)
		mu.Unlock()
	})
	val, err := env.ExecuteActivity(f.act.RotateKEK, rotateInput())
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	var res activities.ActionResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.Outputs["key_version"] != "iru-kek-v2" || res.Outputs["rewrapped"] != "12" || res.Outputs["retired"] != "iru-kek-v1" {
		t.Errorf("outputs = %v, want key_version iru-kek-v2, 12 rewrapped, v1 retired", res.Outputs)
	}
	f.check("iru-kek-v2")
	if got := f.kekIDs(); !slices.Equal(got, []string{"iru-kek-v2"}) {
		t.Errorf("KEKs after rotation = %v, want only v2", got)
	}
	mu.Lock()
	if len(beats) == 0 || beats[0].KeyVersion != "iru-kek-v2" {
		t.Errorf("heartbeats %+v: want progress towards iru-kek-v2", beats)
	}
	mu.Unlock()

	// A retried attempt with the same idempotency key makes no new version.
	if _, err := env.ExecuteActivity(f.act.RotateKEK, rotateInput()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := f.kekIDs(); !slices.Equal(got, []string{"iru-kek-v2"}) {
		t.Errorf("KEKs after a retried rotation = %v, want only v2", got)
	}
	// Another rotation (another step) moves everything again.
	in := rotateInput()
	in.IdempotencyKey = "INC-10/rotate_kek"
	if _, err := env.ExecuteActivity(f.act.RotateKEK, in); err != nil {
		t.Fatalf("second rotation: %v", err)
	}
	f.check("iru-kek-v3")
	if !slices.Equal(f.watch.retired, []string{"iru-kek-v1", "iru-kek-v2"}) {
		t.Errorf("retired %v", f.watch.retired)
	}
}

func TestRotateKEKResumesAfterCrash(t *testing.T) {
	f := newFixture(t, 6, 6)
	ctx, cancel := context.WithCancel(context.Background())
	var last Progress
	_, err := f.act.Rotate(ctx, rotateInput(), Progress{}, func(p Progress) {
		last = Progress{KeyVersion: p.KeyVersion, Done: slices.Clone(p.Done), Retired: slices.Clone(p.Retired), Rewrapped: map[string]int{}}
		for k, v := range p.Rewrapped {
			last.Rewrapped[k] = v
		}
		if p.Rewrapped["codec"]+p.Rewrapped["evidence"] >= 8 {
			cancel() // the worker dies after 8 keys
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted rotation: err = %v, want context.Canceled", err)
	}
	if got := f.kekIDs(); !slices.Equal(got, []string{"iru-kek-v1", "iru-kek-v2"}) {
		t.Fatalf("KEKs after the crash = %v, want v1 kept and v2 current", got)
	}
	stale, err := f.evKeys.StaleWrappedKeys(context.Background(), "iru-kek-v2", math.MaxInt)
	if err != nil || len(stale) != 4 || last.Rewrapped["codec"] != 6 || last.Rewrapped["evidence"] != 2 || !slices.Equal(last.Done, []string{"codec"}) {
		t.Fatalf("after the crash: %d evidence keys stale (%v), progress %+v; want 4 stale, codec done, 2 evidence keys moved", len(stale), err, last)
	}
	if len(f.watch.retired) != 0 {
		t.Fatalf("retired %v before the rewrap finished", f.watch.retired)
	}
	// The old wraps still open in the meantime.
	f.check2Versions()

	// The retried attempt reads the heartbeat details and finishes.
	env := activitytest.New(nil)
	env.RegisterActivity(f.act.RotateKEK)
	env.SetHeartbeatDetails(last)
	val, err := env.ExecuteActivity(f.act.RotateKEK, rotateInput())
	if err != nil {
		t.Fatalf("resumed rotation: %v", err)
	}
	var res activities.ActionResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	if res.Outputs["key_version"] != "iru-kek-v2" || res.Outputs["rewrapped"] != "12" {
		t.Errorf("outputs = %v, want v2 and 12 keys over both attempts", res.Outputs)
	}
	f.check("iru-kek-v2")
	if !slices.Equal(f.watch.retired, []string{"iru-kek-v1"}) || !slices.Equal(f.kekIDs(), []string{"iru-kek-v2"}) {
		t.Errorf("retired %v, KEKs %v; want v1 retired at the end", f.watch.retired, f.kekIDs())
	}
}

// check2Versions asserts every key opens while wraps are split between versions.
func (f *fixture) check2Versions() {
	f.t.Helper()
	ctx := context.Background()
	all, err := f.codec.List()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range all {
		if dek, err := f.m.Unwrap(ctx, k.Wrapped); err != nil || !bytes.Equal(dek, f.deks[k.ID]) {
			f.t.Errorf("codec key %s (%s) does not unwrap: %v", k.ID, k.Wrapped.KeyID, err)
		}
	}
	for ref := range f.evidence {
		rc, _, err := f.locker.Get(ctx, ref, evidence.Reader{Identity: "system:test", Reason: "mid-rotation read"})
		if err != nil {
			f.t.Errorf("get %s mid-rotation: %v", ref, err)
			continue
		}
		if _, err := io.ReadAll(rc); err != nil {
			f.t.Errorf("read %s mid-rotation: %v", ref, err)
		}
		_ = rc.Close()
	}
}

func TestRotateKEKPlanAndRefusals(t *testing.T) {
	f := newFixture(t, 3, 2)
	ctx := context.Background()
	dry := rotateInput()
	dry.DryRun = true
	res, err := f.act.Rotate(ctx, dry, Progress{}, func(Progress) { t.Error("a dry run heartbeats progress") })
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if res.Outputs["key_version"] != "iru-kek-v2" || res.Outputs["rewrapped"] != "5" || len(res.Plan) != 4 ||
		!strings.Contains(res.Plan[1], "rewrap 3 codec keys") || !strings.Contains(res.Plan[2], "rewrap 2 evidence keys") {
		t.Errorf("plan = %+v", res)
	}
	if got := f.kekIDs(); !slices.Equal(got, []string{"iru-kek-v1"}) {
		t.Errorf("a dry run changed the KEKs: %v", got)
	}
	f.check("iru-kek-v1")

	for _, tc := range []struct {
		name    string
		mutate  func(*activities.ActionInput)
		errType string
	}{
		{"live drill", func(in *activities.ActionInput) { in.Drill = true }, activities.ErrTypePrecondition},
		{"other key", func(in *activities.ActionInput) { in.Params["key_label"] = "iru-audit-sign-v1" }, activities.ErrTypeBadParams},
		{"no idempotency key", func(in *activities.ActionInput) { in.IdempotencyKey = "" }, activities.ErrTypeBadParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := rotateInput()
			tc.mutate(&in)
			_, err := f.act.Rotate(ctx, in, Progress{}, func(Progress) {})
			var app *temporal.ApplicationError
			if !errors.As(err, &app) || app.Type() != tc.errType || !app.NonRetryable() {
				t.Errorf("err = %v, want final %s", err, tc.errType)
			}
		})
	}
	if got := f.kekIDs(); !slices.Equal(got, []string{"iru-kek-v1"}) {
		t.Errorf("refused rotations changed the KEKs: %v", got)
	}
	// A drill in dry-run mode may plan.
	dry.Drill = true
	if _, err := f.act.Rotate(ctx, dry, Progress{}, func(Progress) {}); err != nil {
		t.Errorf("dry-run drill: %v", err)
	}
}

func TestEvidenceKeysReplace(t *testing.T) {
	f := newFixture(t, 0, 2)
	ctx := context.Background()
	stale, err := f.evKeys.StaleWrappedKeys(ctx, "iru-kek-v2", math.MaxInt)
	if err != nil || len(stale) != 2 {
		t.Fatalf("stale = %d, %v", len(stale), err)
	}
	if one, err := f.evKeys.StaleWrappedKeys(ctx, "iru-kek-v2", 1); err != nil || len(one) != 1 {
		t.Errorf("limit 1 returned %d keys (%v)", len(one), err)
	}
	if none, err := f.evKeys.StaleWrappedKeys(ctx, "iru-kek-v1", math.MaxInt); err != nil || len(none) != 0 {
		t.Errorf("keys under the current KEK listed as stale: %d (%v)", len(none), err)
	}
	sk := stale[0]
	other := sk.Wrapped
	other.Nonce = bytes.Clone(other.Nonce)
	other.Nonce[0] ^= 1
	updated := keys.Wrapped{KeyID: "iru-kek-v9", Nonce: make([]byte, 12), Ciphertext: []byte("x")}
	for _, tc := range []struct {
		name string
		ref  string
		old  keys.Wrapped
		want error
	}{
		{"changed meanwhile", sk.Ref, other, keys.ErrWrappedKeyChanged},
		{"malformed ref", "../../etc/passwd", sk.Wrapped, nil},
		{"unknown key", "INC-0/" + strings.Repeat("0", 32) + ".key", sk.Wrapped, keys.ErrWrappedKeyChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.evKeys.ReplaceWrappedKey(ctx, tc.ref, tc.old, updated)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Nothing was replaced: every object still reads.
	f.check("iru-kek-v1")

	// A key whose object was destroyed meanwhile is not brought back.
	obj := strings.TrimSuffix(f.evKeys.backend.Path(sk.Ref), ".key") + ".obj"
	if err := os.Remove(obj); err != nil {
		t.Fatal(err)
	}
	err = f.evKeys.ReplaceWrappedKey(ctx, sk.Ref, sk.Wrapped, updated)
	if !errors.Is(err, keys.ErrWrappedKeyChanged) {
		t.Errorf("err = %v, want ErrWrappedKeyChanged", err)
	}
	if _, err := os.Stat(f.evKeys.backend.Path(sk.Ref)); !os.IsNotExist(err) {
		t.Errorf("the key of a destroyed object is still there: %v", err)
	}
}
