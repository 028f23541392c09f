package decision

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func statement() Statement {
	return Statement{WorkflowID: "incident:k1", RunID: "run-1", StepID: "shutdown", Decision: Approve,
		Subject: "keycloak:iru/bob", Username: "bob", Roles: []string{"ir-lead"}, SourceIP: "127.0.0.1",
		SessionID: "sid-1", TokenID: "jti-1", AMR: []string{"pwd", "otp"}, ACR: "2", Reason: "ok <&>",
		IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute), Nonce: "n-1"}
}

func signer(t *testing.T) *LocalSigner {
	t.Helper()
	s, err := NewLocalSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sign(t *testing.T, s Signer, st Statement) Signed {
	t.Helper()
	sg, err := Sign(context.Background(), s, st)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func TestVerifyRoundTrip(t *testing.T) {
	k := signer(t)
	ks := KeySet{Keys: []Key{k.Key(time.Time{}, time.Time{})}}
	got, err := ks.Verify(sign(t, k, statement()), t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "bob" || got.Reason != "ok <&>" || !got.HasSecondFactor() || got.V != Version {
		t.Fatalf("statement = %+v", got)
	}
	if err := got.Check(Binding{WorkflowID: "incident:k1", RunID: "run-1", StepID: "shutdown", Decision: Approve}); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyRefuses performs the forgeries and misuses a sender can try
// and asserts each is refused with its error.
func TestVerifyRefuses(t *testing.T) {
	k, other := signer(t), signer(t)
	ks := KeySet{Keys: []Key{k.Key(time.Time{}, time.Time{})}}
	good := sign(t, k, statement())
	now := t0.Add(time.Minute)
	cases := []struct {
		name string
		s    Signed
		now  time.Time
		want error
	}{
		{"missing", Signed{}, now, ErrMissing},
		{"signed by another key", sign(t, other, statement()), now, ErrUnknownKey},
		{"other key claiming our id", func() Signed { s := sign(t, other, statement()); s.KeyID = good.KeyID; return s }(), now, ErrBadSignature},
		{"payload altered (roles)", func() Signed {
			s := good
			s.Payload = bytes.Replace(bytes.Clone(good.Payload), []byte(`"ir-lead"`), []byte(`"ir-admin"`), 1)
			return s
		}(), now, ErrBadSignature},
		{"signature altered", func() Signed { s := good; s.Sig = bytes.Clone(good.Sig); s.Sig[len(s.Sig)-1] ^= 1; return s }(), now, ErrBadSignature},
		{"expired", good, t0.Add(6 * time.Minute), ErrExpired},
		{"issued in the future", good, t0.Add(-2 * time.Minute), ErrExpired},
		{"not canonical", func() Signed {
			p := append(bytes.Clone(good.Payload), ' ')
			id, sig, _ := k.SignDigest(context.Background(), Digest(p))
			return Signed{Payload: p, KeyID: id, Sig: sig}
		}(), now, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ks.Verify(c.s, c.now); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestCheckMisbound(t *testing.T) {
	st := statement()
	for _, b := range []Binding{
		{WorkflowID: "incident:k2", RunID: "run-1", StepID: "shutdown", Decision: Approve},
		{WorkflowID: "incident:k1", RunID: "run-2", StepID: "shutdown", Decision: Approve},
		{WorkflowID: "incident:k1", RunID: "run-1", StepID: "restore", Decision: Approve},
		{WorkflowID: "incident:k1", RunID: "run-1", StepID: "shutdown", Decision: Deny},
	} {
		if err := st.Check(b); !errors.Is(err, ErrMisbound) {
			t.Errorf("Check(%+v) = %v, want misbound", b, err)
		}
	}
}

// TestRotation: two keys with overlapping windows; a statement of the old
// key counts inside its window and is refused after it, the new key's
// statements count from its start.
func TestRotation(t *testing.T) {
	old, cur := signer(t), signer(t)
	ks := KeySet{Keys: []Key{old.Key(t0.Add(-24*time.Hour), t0.Add(time.Hour)), cur.Key(t0.Add(-time.Hour), time.Time{})}}
	st := statement()
	st.ExpiresAt = t0.Add(3 * time.Hour)
	byOld, byCur := sign(t, old, st), sign(t, cur, st)
	if _, err := ks.Verify(byOld, t0.Add(30*time.Minute)); err != nil {
		t.Fatalf("old key inside its window: %v", err)
	}
	if _, err := ks.Verify(byCur, t0.Add(30*time.Minute)); err != nil {
		t.Fatalf("new key in the overlap: %v", err)
	}
	if _, err := ks.Verify(byOld, t0.Add(90*time.Minute)); !errors.Is(err, ErrKeyNotValid) {
		t.Fatalf("old key after its window: %v, want ErrKeyNotValid", err)
	}
	if _, err := ks.Verify(byCur, t0.Add(90*time.Minute)); err != nil {
		t.Fatalf("new key after the overlap: %v", err)
	}
	early := statement()
	early.IssuedAt, early.ExpiresAt = t0.Add(-2*time.Hour), t0.Add(time.Hour)
	if _, err := ks.Verify(sign(t, cur, early), t0.Add(-time.Hour+time.Minute)); !errors.Is(err, ErrKeyNotValid) {
		t.Fatalf("statement issued before the new key's window: %v", err)
	}
}

func TestPEMRoundTrip(t *testing.T) {
	a, b := signer(t), signer(t)
	ka, kb := a.Key(t0, t0.Add(time.Hour)), b.Key(time.Time{}, time.Time{})
	ks, err := ParsePEM(append(ka.EncodePEM(), kb.EncodePEM()...))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Keys) != 2 || ks.Keys[0].ID != ka.ID || !ks.Keys[0].NotAfter.Equal(ka.NotAfter) || !ks.Keys[1].NotBefore.IsZero() {
		t.Fatalf("keys = %+v", ks.Keys)
	}
	if _, err := ParsePEM([]byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Fatal("a private key block was accepted")
	}
}
