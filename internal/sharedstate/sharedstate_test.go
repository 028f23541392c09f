//go:build integration

package sharedstate_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/auth"
	intakeauth "github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/internal/sharedstate/sharedtest"
)

// TestReplayGuardExpiry: a signature is refused until it expires, then
// taken over; Sweep deletes only expired rows; the detector is part of the
// key.
func TestReplayGuardExpiry(t *testing.T) {
	st := sharedtest.Open(t, sharedtest.Config(t))
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	sig := sha256.Sum256([]byte("signature"))
	steps := []struct {
		name     string
		detector string
		expires  time.Time
		at       time.Time
		want     error
	}{
		{"first", "d1", now.Add(time.Minute), now, nil},
		{"replay", "d1", now.Add(time.Minute), now.Add(30 * time.Second), intakeauth.ErrReplayed},
		{"other detector", "d2", now.Add(time.Minute), now, nil},
		{"after expiry", "d1", now.Add(3 * time.Minute), now.Add(time.Minute), nil},
		{"replay of the renewed row", "d1", now.Add(3 * time.Minute), now.Add(2 * time.Minute), intakeauth.ErrReplayed},
	}
	for _, s := range steps {
		if err := st.Remember(ctx, s.detector, sig, s.expires, s.at); !errors.Is(err, s.want) || (s.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	// At now+2m the d2 row (expired at now+1m) goes, d1's (now+3m) stays.
	n, err := st.Sweep(ctx, now.Add(2*time.Minute), time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d rows, %v; want 1", n, err)
	}
	if err := st.Remember(ctx, "d1", sig, now.Add(3*time.Minute), now.Add(2*time.Minute)); !errors.Is(err, intakeauth.ErrReplayed) {
		t.Errorf("the live row was swept: %v", err)
	}
}

// TestConcurrentUpdatesKeepEveryChange: writers on separate connections
// (as a scheduled rotation and an operator would be) each add a detector
// at once; the row lock serialises them, so none is lost and the version
// counts every write.
func TestConcurrentUpdatesKeepEveryChange(t *testing.T) {
	cfg := sharedtest.Config(t)
	stores := []*sharedstate.Store{sharedtest.Open(t, cfg), sharedtest.Open(t, cfg)}
	ctx := context.Background()
	v0, err := stores[0].Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			err := stores[i%2].Update(ctx, func(f *detectorsfile.File) (bool, error) {
				time.Sleep(5 * time.Millisecond) // widen the race
				f.Detectors = append(f.Detectors, intakeauth.Detector{Name: fmt.Sprintf("d%02d", i), Format: "generic",
					APIKeys: []intakeauth.APIKey{{ID: "k", SHA256: intakeauth.HashKey("k", fmt.Sprint(i))}}})
				return true, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	v, f, err := stores[1].Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Detectors) != writers || v != v0+writers {
		t.Errorf("%d detectors at version %d, want %d at %d", len(f.Detectors), v, writers, v0+writers)
	}
	// An invalid result is refused and changes nothing.
	err = stores[0].Update(ctx, func(f *detectorsfile.File) (bool, error) {
		f.Detectors = append(f.Detectors, intakeauth.Detector{Name: "no-credentials", Format: "generic"})
		return true, nil
	})
	if err == nil {
		t.Fatal("an invalid detector was written")
	}
	if v2, _ := stores[0].Version(ctx); v2 != v {
		t.Errorf("version moved to %d after a refused update", v2)
	}
}

// TestThresholdFiresOnceAcrossReplicas: eight replicas each record
// failures of one key concurrently; the threshold notification fires on
// exactly one of them; after a quiet window it re-arms.
func TestThresholdFiresOnceAcrossReplicas(t *testing.T) {
	st := sharedtest.Open(t, sharedtest.Config(t))
	var fired atomic.Int32
	clock := time.Now()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var counters []auth.FailureCounter
	for range 8 {
		counters = append(counters, st.Failures(&auth.FailureWatch{Threshold: 5, Window: time.Minute, Now: now,
			OnExceeded: func(string, int) { fired.Add(1) }}))
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() { counters[i%8].Failure("203.0.113.5") })
	}
	wg.Wait()
	if n := fired.Load(); n != 1 {
		t.Fatalf("fired %d times, want 1", n)
	}
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	for i := range 5 {
		counters[i%8].Failure("203.0.113.5")
	}
	if n := fired.Load(); n != 2 {
		t.Errorf("after a window: fired %d times, want 2", n)
	}
}

// TestFailuresFallBackToTheProcess: with the database gone, failures are
// still counted (by the replica's own watch) and the threshold still fires.
func TestFailuresFallBackToTheProcess(t *testing.T) {
	st := sharedtest.Open(t, sharedtest.Config(t))
	var fired atomic.Int32
	c := st.Failures(&auth.FailureWatch{Threshold: 3, Window: time.Minute, OnExceeded: func(string, int) { fired.Add(1) }})
	st.Close()
	for range 3 {
		c.Failure("198.51.100.4")
	}
	if fired.Load() != 1 {
		t.Errorf("fired %d times without the database, want 1", fired.Load())
	}
}
