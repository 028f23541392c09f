//go:build integration

package sharedstate_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/sharedstate/sharedtest"
)

// BenchmarkRemember is the shared replay guard's cost per accepted signed
// request: one INSERT … ON CONFLICT round trip.
func BenchmarkRemember(b *testing.B) {
	st := sharedtest.Open(b, sharedtest.Config(b))
	ctx := context.Background()
	now := time.Now()
	var i uint64
	for b.Loop() {
		i++
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], i)
		if err := st.Remember(ctx, "bench", sha256.Sum256(buf[:]), now.Add(5*time.Minute), now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFailure is the shared failed-authentication counter's cost per
// failure below the threshold: an INSERT and a bounded count.
func BenchmarkFailure(b *testing.B) {
	st := sharedtest.Open(b, sharedtest.Config(b))
	c := st.Failures(&auth.FailureWatch{Threshold: 1 << 30, Window: 5 * time.Minute})
	for b.Loop() {
		c.Failure("203.0.113.1")
	}
}

// BenchmarkVersion is one poll of the shared detectors' version.
func BenchmarkVersion(b *testing.B) {
	st := sharedtest.Open(b, sharedtest.Config(b))
	ctx := context.Background()
	for b.Loop() {
		if _, err := st.Version(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
