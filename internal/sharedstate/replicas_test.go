//go:build integration

package sharedstate_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/intakekeys"
	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/secretsink"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/sharedstate/sharedtest"
	"github.com/iru-responder/responder/internal/testenv/activitytest"
)

const (
	firstKey   = "iru_first-key-of-the-generic-detector"
	hmacSecret = "wazuh-hmac-secret-0123456789abcdef-shared"
)

// detectors are the detectors the replicas start with: one with an API
// key, one that signs its requests.
func detectors() []auth.Detector {
	return []auth.Detector{
		{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{{ID: "k1", SHA256: auth.HashKey("k1", firstKey)}}},
		{Name: "signer", Format: "generic", HMACSecrets: []auth.HMACSecret{{ID: "h1", Secret: hmacSecret}}},
	}
}

type assets []inventory.Asset

func (a assets) Assets(context.Context) ([]inventory.Asset, error) { return a, nil }

// replica is one API server's intake: its own spool on its own disk.
type replica struct {
	svc *intake.Service
	url string
}

// startReplica opens an intake the way `starter serve` does: with st, the
// detectors and the replay guard are the shared store's; without, the
// detectors are the replica's own and its replay cache its memory.
func startReplica(t *testing.T, st *sharedstate.Store, poll time.Duration) *replica {
	t.Helper()
	cfg := intake.Config{SpoolDir: filepath.Join(t.TempDir(), "spool"), DetectorsPoll: poll}
	deps := intake.Deps{Assets: assets{{Name: "db-1", Node: "pve2", VMID: 122}}, Signaler: forward.TemporalSignaler{},
		Log: slog.New(slog.DiscardHandler)}
	if st != nil {
		deps.Detectors, deps.Replay = st, st
	} else {
		cfg.Detectors = detectors()
	}
	svc, err := intake.Open(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The forwarder is not run: every accepted alert stays in the
		// replica's spool, where the test counts it.
		go svc.Inventory.Run(ctx)
		if svc.Reloader != nil {
			svc.Reloader.Run(ctx)
		}
	}()
	mux := http.NewServeMux()
	mux.Handle(intake.Pattern, svc.Handler)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		_ = svc.Close()
	})
	return &replica{svc: svc, url: srv.URL}
}

// post sends body to detector with the header pairs and returns the status.
func (r *replica) post(t *testing.T, detector string, body []byte, hdr ...string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url+"/v1/alerts/"+detector, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// spooled is the number of alerts the replica accepted and holds.
func (r *replica) spooled() int { return r.svc.Spool.Stats().Pending }

func alert(i int) []byte {
	return fmt.Appendf(nil, `{"source":"replicas","rule":"ContainerShell","severity":"high","asset":"db-1","summary":"alert %d","labels":{"n":"%d"},"observed_at":"2024-05-01T12:00:00Z"}`, i, i)
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// seed writes the starting detectors to the shared store.
func seed(t *testing.T, st *sharedstate.Store) {
	t.Helper()
	err := st.Update(context.Background(), func(f *detectorsfile.File) (bool, error) {
		f.Detectors = detectors()
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKeyRotatedAtOneReplicaUsedAtTheOther: keys.rotate_intake_keys (the
// real activity, configured with the shared store as the worker is) mints
// a new key; replica B, which the rotation never touched, accepts it within
// one poll of the shared version, and once the overlap ends both replicas
// refuse the old key. With per-process detectors B never learns the key
// (the control case), which is what the shared store fixes.
func TestKeyRotatedAtOneReplicaUsedAtTheOther(t *testing.T) {
	cfg := sharedtest.Config(t)
	st := sharedtest.Open(t, cfg)
	seed(t, st)
	a := startReplica(t, st, cfg.Poll)
	b := startReplica(t, st, cfg.Poll)
	if s := b.post(t, "generic", alert(0), bearer(firstKey)...); s != http.StatusAccepted {
		t.Fatalf("first key at B before the rotation: %d", s)
	}

	sink := secretsink.File{Dir: t.TempDir()}
	const overlap = 3 * time.Second
	rot, err := intakekeys.New(intakekeys.Config{Overlap: overlap, Grace: time.Hour}, sink)
	if err != nil {
		t.Fatal(err)
	}
	rot = rot.WithStore(st)
	env := activitytest.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	env.RegisterActivityWithOptions(rot.RotateIntakeKeys, activity.RegisterOptions{Name: activities.KeysRotateIntakeKeys})
	res, err := activitytest.Run[activities.ActionResult](env, activities.KeysRotateIntakeKeys, activities.ActionInput{
		IdempotencyKey: "rotation-1", Params: map[string]string{"source": "generic", "reason": "test"}})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	rotatedAt := time.Now()
	newKey, err := sink.Read(res.Outputs[activities.IntakeKeyRefOutputPrefix+"generic"])
	if err != nil {
		t.Fatal(err)
	}

	// B learns the key from the store within one poll (2 s) plus margin.
	var took time.Duration
	for {
		if s := b.post(t, "generic", alert(1), bearer(string(newKey))...); s == http.StatusAccepted {
			took = time.Since(rotatedAt)
			break
		}
		if time.Since(rotatedAt) > cfg.Poll+3*time.Second {
			t.Fatalf("replica B still refuses the rotated key %s after the rotation", time.Since(rotatedAt))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("rotated key accepted at the other replica %s after the rotation (poll %s)", took.Round(time.Millisecond), cfg.Poll)
	if s := a.post(t, "generic", alert(2), bearer(string(newKey))...); s != http.StatusAccepted {
		t.Errorf("rotated key at A: %d", s)
	}
	// The old key works during the overlap, then nowhere.
	time.Sleep(time.Until(rotatedAt.Add(overlap + time.Second)))
	for name, r := range map[string]*replica{"A": a, "B": b} {
		if s := r.post(t, "generic", alert(3), bearer(firstKey)...); s != http.StatusUnauthorized {
			t.Errorf("old key at %s after the overlap: %d, want 401", name, s)
		}
	}
	if n := a.spooled() + b.spooled(); n != 3 {
		t.Errorf("%d alerts spooled, want 3 (the refused ones must not be)", n)
	}

	t.Run("control: per-process detectors", func(t *testing.T) {
		own := startReplica(t, nil, cfg.Poll)
		time.Sleep(cfg.Poll + 500*time.Millisecond)
		if s := own.post(t, "generic", alert(4), bearer(string(newKey))...); s != http.StatusUnauthorized {
			t.Errorf("a replica with its own detectors accepted a key rotated elsewhere: %d", s)
		}
	})
}

// TestReplayAcrossReplicasRefused: a signed request accepted by replica A
// and replayed, byte for byte, to replica B inside the replay window is
// refused by B when the replay guard is shared, and nothing more reaches a
// spool. The control replicas, each with its own memory, accept the replay:
// the attack works without the defence.
func TestReplayAcrossReplicasRefused(t *testing.T) {
	tests := []struct {
		name       string
		shared     bool
		wantReplay int
		wantSpool  int
	}{
		{"shared replay guard", true, http.StatusUnauthorized, 1},
		{"control: per-process replay caches", false, http.StatusAccepted, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st *sharedstate.Store
			if tc.shared {
				st = sharedtest.Open(t, sharedtest.Config(t))
				seed(t, st)
			}
			a, b := startReplica(t, st, time.Second), startReplica(t, st, time.Second)
			body := alert(7)
			ts, sig := auth.SignatureHeader([]byte(hmacSecret), time.Now(), body)
			hdr := []string{auth.HeaderTimestamp, ts, auth.HeaderSignature, sig}
			if s := a.post(t, "signer", body, hdr...); s != http.StatusAccepted {
				t.Fatalf("signed request at A: %d", s)
			}
			if s := a.post(t, "signer", body, hdr...); s != http.StatusUnauthorized {
				t.Errorf("replay at A itself: %d, want 401", s)
			}
			if s := b.post(t, "signer", body, hdr...); s != tc.wantReplay {
				t.Errorf("replay at B: %d, want %d", s, tc.wantReplay)
			}
			if n := a.spooled() + b.spooled(); n != tc.wantSpool {
				t.Errorf("%d alerts spooled, want %d", n, tc.wantSpool)
			}
			if !tc.shared {
				return
			}
			// A fresh signature of the same body is a new request: accepted.
			ts2, sig2 := auth.SignatureHeader([]byte(hmacSecret), time.Now().Add(time.Second), body)
			if s := b.post(t, "signer", body, auth.HeaderTimestamp, ts2, auth.HeaderSignature, sig2); s != http.StatusAccepted {
				t.Errorf("a newly signed request at B: %d", s)
			}
		})
	}
}

// TestReplayGuardFailsClosed: when the shared replay guard cannot be
// reached, a correctly signed request is refused (it could be a replay the
// guard would have caught) and nothing is spooled; API-key requests, which
// need no replay guard, still pass.
func TestReplayGuardFailsClosed(t *testing.T) {
	cfg := sharedtest.Config(t)
	st := sharedtest.Open(t, cfg)
	seed(t, st)
	r := startReplica(t, st, time.Hour)
	st.Close() // the database is gone for this replica
	body := alert(9)
	ts, sig := auth.SignatureHeader([]byte(hmacSecret), time.Now(), body)
	if s := r.post(t, "signer", body, auth.HeaderTimestamp, ts, auth.HeaderSignature, sig); s != http.StatusUnauthorized {
		t.Errorf("signed request without a replay guard: %d, want 401", s)
	}
	if s := r.post(t, "generic", alert(10), bearer(firstKey)...); s != http.StatusAccepted {
		t.Errorf("API key request without the database: %d, want 202 (detectors in force stay)", s)
	}
	if n := r.spooled(); n != 1 {
		t.Errorf("%d alerts spooled, want 1", n)
	}
}
