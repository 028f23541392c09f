//go:build integration

package platform

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/objectstore"
)

// aeadWrapper wraps data keys with AES-GCM under a random KEK (the HSM's
// part, which this test does not need).
type aeadWrapper struct{ aead cipher.AEAD }

func (w aeadWrapper) Wrap(_ context.Context, dek []byte) (evidence.Wrapped, error) {
	nonce := make([]byte, w.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return evidence.Wrapped{KeyID: "kek", Nonce: nonce, Ciphertext: w.aead.Seal(nil, nonce, dek, nil)}, nil
}

func (w aeadWrapper) Unwrap(_ context.Context, wr evidence.Wrapped) ([]byte, error) {
	if wr.KeyID != "kek" {
		return nil, errors.New("unknown KEK")
	}
	return w.aead.Open(nil, wr.Nonce, wr.Ciphertext, nil)
}

// TestIncidentCloseReleasesEvidenceHold: the incident_closed ledger entry
// releases the store's legal hold on the incident's evidence on S3 (real
// MinIO), keeps its compliance retention, and a re-run of the entry
// records the release once.
func TestIncidentCloseReleasesEvidenceHold(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := objectstore.Start(ctx, objectstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	p := srv.Platform()
	backend, err := evidence.NewS3Backend(ctx, evidence.S3Options{Endpoint: srv.Endpoint(), Bucket: srv.Bucket(),
		AccessKey: p.AccessKey, SecretKey: p.SecretKey, SessionToken: p.SessionToken})
	if err != nil {
		t.Fatal(err)
	}
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	block, _ := aes.NewCipher(kek)
	aead, _ := cipher.NewGCM(block)
	locker, err := evidence.Open(t.TempDir(), aeadWrapper{aead}, evidence.Options{Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := locker.Put(ctx, evidence.PutRequest{Incident: "INC-9", Name: "ps.txt", Class: evidence.ClassOperational,
		MediaType: "text/plain", CollectedBy: "system:worker", Source: "pve/node1/lxc/101", Body: strings.NewReader("ps output")})
	if err != nil {
		t.Fatal(err)
	}
	st := sqliteStore(t)
	a := &Activities{Ledger: ledger.New(st, nil), Evidence: locker}
	held := func() bool {
		t.Helper()
		lock, err := locker.StoreLock(ctx, ref) // the store's word, not the custody log's
		if err != nil {
			t.Fatal(err)
		}
		if lock.Mode != "COMPLIANCE" {
			t.Fatalf("object not retained: %+v", lock)
		}
		return lock.LegalHold
	}
	if !held() {
		t.Fatal("evidence of an open incident is not under a legal hold")
	}
	at := time.Now()
	for seq, kind := range []string{"incident_opened", "incident_closed", "incident_closed"} {
		in := activities.LedgerAppendInput{IncidentID: "INC-9", Seq: int64(min(seq+1, 2)), At: at, Kind: kind, Actor: "workflow", Outcome: "resolved"}
		if _, err := a.LedgerAppend(ctx, in); err != nil { // the third is a re-run of the second
			t.Fatalf("append %s: %v", kind, err)
		}
	}
	if held() {
		t.Fatal("legal hold still on after the incident closed")
	}
	m, _ := locker.Manifest(ctx, "INC-9")
	n := 0
	for _, e := range m.Events {
		if e.Kind == evidence.EventHoldReleased {
			n++
		}
	}
	if n != 1 || m.Held {
		t.Fatalf("%d hold_released events (held %v), want 1", n, m.Held)
	}
}
