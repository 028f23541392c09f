package codec_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
)

// countingWrapper counts HSM calls.
type countingWrapper struct {
	codec.KeyWrapper
	wraps, unwraps atomic.Int32
}

func (c *countingWrapper) Wrap(ctx context.Context, dek []byte) (keys.Wrapped, error) {
	c.wraps.Add(1)
	return c.KeyWrapper.Wrap(ctx, dek)
}

func (c *countingWrapper) Unwrap(ctx context.Context, w keys.Wrapped) ([]byte, error) {
	c.unwraps.Add(1)
	return c.KeyWrapper.Unwrap(ctx, w)
}

type fixture struct {
	hsm   *keys.Manager
	store *codec.FileKeyStore
	ring  *codec.KeyRing
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	m, _ := hsmtest.Manager(tb)
	store, err := codec.NewFileKeyStore(filepath.Join(tb.TempDir(), "codec-keys"))
	if err != nil {
		tb.Fatal(err)
	}
	ring, err := codec.OpenKeyRing(context.Background(), m, store)
	if err != nil {
		tb.Fatalf("OpenKeyRing: %v", err)
	}
	return fixture{hsm: m, store: store, ring: ring}
}

type alertInput struct {
	AlertID string
	Secret  string
	Blob    []byte
}

func TestDataConverterRoundTrip(t *testing.T) {
	f := newFixture(t)
	dc := codec.NewDataConverter(f.ring)
	const secret = "root-password=Tr0ub4dor&3"
	big := make([]byte, 64<<10)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		value any
		into  func() any
	}{
		{"string", secret, func() any { return new(string) }},
		{"struct", alertInput{AlertID: "a-1", Secret: secret}, func() any { return new(alertInput) }},
		{"64 KiB struct", alertInput{AlertID: "a-2", Secret: secret, Blob: big}, func() any { return new(alertInput) }},
		{"bytes", []byte(secret), func() any { return new([]byte) }},
		{"nil", nil, func() any { return new(any) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := dc.ToPayload(tc.value)
			if err != nil {
				t.Fatalf("ToPayload: %v", err)
			}
			if got := string(p.Metadata["encoding"]); got != "binary/encrypted" {
				t.Errorf("encoding = %q", got)
			}
			if got := string(p.Metadata["encryption-key-id"]); got != f.ring.CurrentKeyID() {
				t.Errorf("encryption-key-id = %q, want %q", got, f.ring.CurrentKeyID())
			}
			if len(p.Metadata) != 2 {
				t.Errorf("metadata %v leaks the inner payload's metadata", p.Metadata)
			}
			if bytes.Contains(p.Data, []byte(secret)) || bytes.Contains(p.Data, []byte("json/plain")) {
				t.Error("payload data contains clear text")
			}
			into := tc.into()
			if err := dc.FromPayload(p, into); err != nil {
				t.Fatalf("FromPayload: %v", err)
			}
			want := tc.into()
			plain, err := converter.GetDefaultDataConverter().ToPayload(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if err := converter.GetDefaultDataConverter().FromPayload(plain, want); err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(into)
			wantJSON, _ := json.Marshal(want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("round trip = %.80s, want %.80s", gotJSON, wantJSON)
			}
		})
	}

	// Two encodings of one value differ (fresh nonce per payload).
	a, _ := dc.ToPayload(secret)
	b, _ := dc.ToPayload(secret)
	if bytes.Equal(a.Data, b.Data) {
		t.Error("two encodings of the same value are identical")
	}
}

// TestDecodeRefusesUnencrypted: a payload sent in clear by a client without
// the key (a made-up approval, say) is refused by the platform's codec and
// data converter; only the codec server's display codec passes it through.
func TestDecodeRefusesUnencrypted(t *testing.T) {
	f := newFixture(t)
	type decisionLike struct {
		StepID   string
		Approver struct{ Subject string }
	}
	plain, err := converter.GetDefaultDataConverter().ToPayload(decisionLike{StepID: "restore"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.NewCodec(f.ring).Decode([]*commonpb.Payload{plain}); !errors.Is(err, codec.ErrPlaintext) {
		t.Fatalf("codec Decode of a plain payload: %v, want ErrPlaintext", err)
	}
	var got decisionLike
	if err := codec.NewDataConverter(f.ring).FromPayload(plain, &got); !errors.Is(err, codec.ErrPlaintext) || got.StepID != "" {
		t.Fatalf("data converter let a plain payload through: %v %+v", err, got)
	}
	// The platform's own encrypted path still works.
	enc, err := codec.NewDataConverter(f.ring).ToPayload(decisionLike{StepID: "restore"})
	if err != nil {
		t.Fatal(err)
	}
	if err := codec.NewDataConverter(f.ring).FromPayload(enc, &got); err != nil || got.StepID != "restore" {
		t.Fatalf("encrypted round trip: %v %+v", err, got)
	}
	out, err := codec.NewDisplayCodec(f.ring).Decode([]*commonpb.Payload{plain})
	if err != nil || len(out) != 1 || out[0] != plain {
		t.Fatalf("display Decode of a plain payload = %v, %v; want it unchanged", out, err)
	}
}

func TestDecryptAfterRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dc := codec.NewDataConverter(f.ring)
	first := f.ring.CurrentKeyID()
	old, err := dc.ToPayload("written before rotation")
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.ring.RotateKey(ctx)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if second == first || f.ring.CurrentKeyID() != second {
		t.Fatalf("after RotateKey current = %s (first %s, new %s)", f.ring.CurrentKeyID(), first, second)
	}
	cur, err := dc.ToPayload("written after rotation")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(cur.Metadata["encryption-key-id"]); got != second {
		t.Errorf("new payload sealed with %s, want %s", got, second)
	}

	check := func(t *testing.T, dc converter.DataConverter) {
		t.Helper()
		for p, want := range map[*commonpb.Payload]string{old: "written before rotation", cur: "written after rotation"} {
			var s string
			if err := dc.FromPayload(p, &s); err != nil || s != want {
				t.Errorf("FromPayload = %q, %v; want %q", s, err, want)
			}
		}
	}
	t.Run("same ring", func(t *testing.T) { check(t, dc) })

	// A restarted process unwraps each key once, not once per payload.
	t.Run("reopened ring", func(t *testing.T) {
		cw := &countingWrapper{KeyWrapper: f.hsm}
		ring, err := codec.OpenKeyRing(ctx, cw, f.store)
		if err != nil {
			t.Fatal(err)
		}
		if ring.CurrentKeyID() != second {
			t.Errorf("reopened current = %s, want %s", ring.CurrentKeyID(), second)
		}
		dc := codec.NewDataConverter(ring)
		for range 50 {
			check(t, dc)
			if _, err := dc.ToPayload("x"); err != nil {
				t.Fatal(err)
			}
		}
		if cw.unwraps.Load() != 2 || cw.wraps.Load() != 0 {
			t.Errorf("HSM calls: %d unwraps, %d wraps; want 2 and 0", cw.unwraps.Load(), cw.wraps.Load())
		}
	})

	// Rotating the HSM KEK and rewrapping the key files keeps everything
	// readable after the old KEK is retired.
	t.Run("after KEK rotation and retire", func(t *testing.T) {
		kek, err := f.hsm.RotateKEK(ctx, "test-rotation")
		if err != nil {
			t.Fatal(err)
		}
		var done int
		if err := f.hsm.Rewrap(ctx, f.store, func(n int) { done = n }); err != nil {
			t.Fatalf("Rewrap: %v", err)
		}
		if done != 2 {
			t.Errorf("rewrapped %d keys, want 2", done)
		}
		if err := f.hsm.RetireKEK(ctx, "iru-kek-v1"); err != nil {
			t.Fatal(err)
		}
		stored, err := f.store.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range stored {
			if k.Wrapped.KeyID != kek {
				t.Errorf("%s still wrapped by %s", k.ID, k.Wrapped.KeyID)
			}
		}
		ring, err := codec.OpenKeyRing(ctx, f.hsm, f.store)
		if err != nil {
			t.Fatalf("reopen after retire: %v", err)
		}
		check(t, codec.NewDataConverter(ring))
	})
}

func TestDecodeRejects(t *testing.T) {
	f := newFixture(t)
	c := codec.NewCodec(f.ring)
	plain, err := converter.GetDefaultDataConverter().ToPayload("secret value")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	good := enc[0]
	otherKey, err := f.ring.RotateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(fn func(p *commonpb.Payload)) *commonpb.Payload {
		p := &commonpb.Payload{Metadata: map[string][]byte{}, Data: bytes.Clone(good.Data)}
		for k, v := range good.Metadata {
			p.Metadata[k] = bytes.Clone(v)
		}
		fn(p)
		return p
	}
	tests := []struct {
		name    string
		p       *commonpb.Payload
		want    error
		wantMsg string
	}{
		{"ciphertext bit flipped", mutate(func(p *commonpb.Payload) { p.Data[20] ^= 1 }), codec.ErrDecrypt, "tampered"},
		{"nonce bit flipped", mutate(func(p *commonpb.Payload) { p.Data[0] ^= 1 }), codec.ErrDecrypt, "tampered"},
		{"truncated", mutate(func(p *commonpb.Payload) { p.Data = p.Data[:10] }), codec.ErrDecrypt, "too short"},
		{"relabelled with another key", mutate(func(p *commonpb.Payload) { p.Metadata["encryption-key-id"] = []byte(otherKey) }), codec.ErrDecrypt, otherKey},
		{"unknown key id", mutate(func(p *commonpb.Payload) {
			p.Metadata["encryption-key-id"] = []byte("dk-20200101T000000Z-deadbeef")
		}), codec.ErrUnknownDataKey, "dk-20200101T000000Z-deadbeef"},
		{"malformed key id", mutate(func(p *commonpb.Payload) { p.Metadata["encryption-key-id"] = []byte("../../etc/passwd") }), codec.ErrUnknownDataKey, "malformed"},
		{"no key id", mutate(func(p *commonpb.Payload) { delete(p.Metadata, "encryption-key-id") }), codec.ErrUnknownDataKey, "encryption-key-id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.Decode([]*commonpb.Payload{tc.p})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			if out != nil {
				t.Error("Decode returned payloads with an error")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}
	if out, err := c.Decode([]*commonpb.Payload{good}); err != nil || !bytes.Equal(out[0].Data, plain.Data) {
		t.Fatalf("the untampered payload no longer decodes: %v", err)
	}
}

// TestKeyAddedByAnotherProcess: a ring finds keys rotated by another
// process sharing the key folder, on demand.
func TestKeyAddedByAnotherProcess(t *testing.T) {
	defer codec.SetReloadInterval(0)()
	f := newFixture(t)
	ctx := context.Background()
	other, err := codec.OpenKeyRing(ctx, f.hsm, f.store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := codec.NewDataConverter(other).ToPayload("from the other process")
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := codec.NewDataConverter(f.ring).FromPayload(p, &s); err != nil || s != "from the other process" {
		t.Fatalf("FromPayload = %q, %v", s, err)
	}
	if f.ring.CurrentKeyID() != other.CurrentKeyID() {
		t.Errorf("after reload current = %s, want the other process's %s", f.ring.CurrentKeyID(), other.CurrentKeyID())
	}
}

func TestFileKeyStore(t *testing.T) {
	f := newFixture(t)
	dir := f.store.Dir()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("key folder mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("key folder holds %d entries (%v), want 1", len(entries), err)
	}
	path := filepath.Join(dir, entries[0].Name())
	fi, err = os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "wrapped", "created"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("key file lacks %q: %s", k, raw)
		}
	}
	var k codec.StoredDataKey
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	if k.ID != f.ring.CurrentKeyID() || k.Wrapped.KeyID != "iru-kek-v1" || len(k.Wrapped.Ciphertext) != 32+16 {
		t.Errorf("stored key %+v", k)
	}
	if err := f.store.Add(k); err == nil {
		t.Error("Add overwrote an existing key")
	}
	private := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := codec.NewFileKeyStore(private); err != nil {
		t.Errorf("NewFileKeyStore on an existing 0700 folder: %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := codec.NewFileKeyStore(open); err == nil {
		t.Error("NewFileKeyStore accepted a folder readable by others")
	}

	// A ring over a file whose wrap was tampered with refuses to open.
	k.Wrapped.Ciphertext[0] ^= 1
	bad, _ := json.Marshal(k)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := codec.OpenKeyRing(context.Background(), f.hsm, f.store); !errors.Is(err, keys.ErrUnwrap) {
		t.Errorf("OpenKeyRing over a tampered key file = %v, want keys.ErrUnwrap", err)
	}
}

func TestConfig(t *testing.T) {
	var c codec.Config
	fields, err := config.Describe(&c)
	if err != nil {
		t.Fatal(err)
	}
	secret := map[string]bool{}
	for _, f := range fields {
		if f.Doc == "" {
			t.Errorf("%s is undocumented", f.Name)
		}
		secret[f.Name] = f.Secret
	}
	if !secret["IRU_CODEC_TOKEN"] || len(fields) != 5 {
		t.Errorf("fields %+v", fields)
	}
	tests := []struct {
		name    string
		env     []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"origins", []string{"IRU_CODEC_CORS_ORIGINS=http://localhost:8233,https://ui.example"}, ""},
		{"short token", []string{"IRU_CODEC_TOKEN=short"}, "IRU_CODEC_TOKEN"},
		{"bad address", []string{"IRU_CODEC_SERVER_ADDR=8089"}, "IRU_CODEC_SERVER_ADDR"},
		{"shared keys", []string{"IRU_CODEC_KEY_STORE=shared", "IRU_CODEC_KEY_DIR="}, ""},
		{"unknown key store", []string{"IRU_CODEC_KEY_STORE=s3"}, "IRU_CODEC_KEY_STORE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c codec.Config
			err := config.LoadFrom(&c, tc.env)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "short") && strings.Contains(tc.name, "token") {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
	var c2 codec.Config
	if err := config.LoadFrom(&c2, []string{"IRU_CODEC_CORS_ORIGINS=http://localhost:8233,https://ui.example"}); err != nil {
		t.Fatal(err)
	}
	if len(c2.CORSOrigins) != 2 || c2.CORSOrigins[1] != "https://ui.example" {
		t.Errorf("CORSOrigins = %v", c2.CORSOrigins)
	}
}

// TestConcurrentUseDuringRotation encodes and decodes from several
// goroutines while the key rotates (run with -race).
func TestConcurrentUseDuringRotation(t *testing.T) {
	f := newFixture(t)
	dc := codec.NewDataConverter(f.ring)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				want := fmt.Sprintf("g%d-%d", g, i)
				p, err := dc.ToPayload(want)
				if err != nil {
					errs <- err
					return
				}
				var got string
				if err := dc.FromPayload(p, &got); err != nil || got != want {
					errs <- fmt.Errorf("round trip %q = %q, %v", want, got, err)
					return
				}
			}
		}()
	}
	for range 3 {
		if _, err := f.ring.RotateKey(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.ring.KeyIDs()); n != 4 {
		t.Errorf("ring holds %d keys, want 4", n)
	}
}
