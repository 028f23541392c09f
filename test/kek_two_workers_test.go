//go:build integration

package test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/keyops"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/testplatform"
	"github.com/iru-responder/responder/internal/workerhost"
)

// TestKEKRotationWithTwoWorkers: two workers on one task queue, configured
// from the same variables (one HSM token, as the cluster mode provisions
// and as production points every process at one network HSM), write and
// read evidence without pause while the KEK is rotated through one of them
// (keys.rotate_kek: new version, rewrap of every stored data key, the old
// version destroyed). Every object either wrote, before, during or after
// the rotation, stays readable from both; what each writes after the
// rotation is wrapped by the new KEK; the old version is gone from the
// token.
func TestKEKRotationWithTwoWorkers(t *testing.T) {
	p := testplatform.New(t, testplatform.Options{})
	// Worker B: the same configuration but its own ledger file (each worker
	// process would reach the shared PostgreSQL ledger; SQLite is one file
	// per process here). Same token, same evidence locker, same codec keys.
	envB := append(append([]string(nil), p.Env...), "IRU_LEDGER_SQLITE_PATH="+filepath.Join(p.State, "ledger-b.db"))
	var cfgB workerhost.Config
	if err := config.LoadFrom(&cfgB, envB); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hostB, err := workerhost.Open(ctx, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hostB.Close)
	testenv.Worker(t, p.Client, p.TaskQueue, func(r worker.Registry) { hostB.Register(r, p.Client) })

	workers := []*workerhost.Host{p.Host, hostB}
	before, err := p.Host.Keys().CurrentKEK(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type object struct {
		ref    evidence.Ref
		body   string
		writer int
	}
	var (
		mu      sync.Mutex
		objects []object
	)
	put := func(w, i int) {
		body := fmt.Sprintf("evidence %d from worker %d", i, w)
		ref, err := workers[w].Stores().Evidence.Put(ctx, evidence.PutRequest{Incident: "INC-kek-two-workers", Name: fmt.Sprintf("w%d-%03d.txt", w, i),
			Class: evidence.Class(activities.ClassOperational), MediaType: "text/plain", CollectedBy: fmt.Sprintf("system:worker-%d", w), Source: "test", Body: strings.NewReader(body)})
		if err != nil {
			t.Errorf("worker %d put %d: %v", w, i, err)
			return
		}
		mu.Lock()
		objects = append(objects, object{ref, body, w})
		mu.Unlock()
	}
	read := func(w int, o object) error {
		rc, _, err := workers[w].Stores().Evidence.Get(ctx, o.ref, evidence.Reader{Identity: "test:kek", Reason: "KEK rotation test"})
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			return err
		}
		if string(b) != o.body {
			return fmt.Errorf("content differs")
		}
		return nil
	}
	for i := range 5 {
		put(0, i)
		put(1, i)
	}
	// Both workers write and read back everything, continuously, while
	// worker A's keys.rotate_kek runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 100; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				put(w, i)
				time.Sleep(25 * time.Millisecond)
				mu.Lock()
				snapshot := append([]object(nil), objects...)
				mu.Unlock()
				for _, o := range snapshot {
					if err := read(w, o); err != nil {
						t.Errorf("worker %d reading %s (written by worker %d) during the rotation: %v", w, o.ref, o.writer, err)
						return
					}
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	// The rotation runs as the keys.rotate_kek activity does, including
	// its retries (the rotation is idempotent per idempotency key): SoftHSM2
	// shared by two key managers in one process now and then fails a key
	// generation with CKR_GENERAL_ERROR while the other one lists the token.
	var res activities.ActionResult
	for attempt := 1; attempt <= 3; attempt++ {
		res, err = p.Host.KeyOps().Rotate(ctx, activities.ActionInput{IdempotencyKey: "kek-two-workers",
			Params: map[string]string{"key_label": keyops.KEKFamily, "reason": "test"}}, keyops.Progress{}, func(keyops.Progress) {})
		if err == nil {
			break
		}
		t.Logf("rotate KEK (attempt %d, retried as the activity would be): %v", attempt, err)
	}
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("rotate KEK: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	after := res.Outputs["key_version"]
	if after == "" || after == before {
		t.Fatalf("rotation made %q (before %q)", after, before)
	}
	// Every object, whoever wrote it and whenever, is readable by both.
	mu.Lock()
	all := append([]object(nil), objects...)
	mu.Unlock()
	for _, o := range all {
		for w := range workers {
			if err := read(w, o); err != nil {
				t.Errorf("worker %d cannot read %s (written by worker %d) after the rotation: %v", w, o.ref, o.writer, err)
			}
		}
	}
	// New writes from either worker use the new KEK; the old one is gone.
	for w := range workers {
		if cur, err := workers[w].Keys().CurrentKEK(ctx); err != nil || cur != after {
			t.Errorf("worker %d wraps with %q (%v), want %s", w, cur, err, after)
		}
		ref, err := workers[w].Stores().Evidence.Put(ctx, evidence.PutRequest{Incident: "INC-kek-two-workers", Name: fmt.Sprintf("after-%d.txt", w),
			Class: evidence.Class(activities.ClassOperational), MediaType: "text/plain", CollectedBy: "system:test", Source: "test", Body: strings.NewReader("after")})
		if err != nil {
			t.Fatal(err)
		}
		rc, meta, err := workers[1-w].Stores().Evidence.Get(ctx, ref, evidence.Reader{Identity: "test:kek", Reason: "KEK rotation test"})
		if err != nil {
			t.Fatalf("worker %d reads worker %d's new object: %v", 1-w, w, err)
		}
		rc.Close()
		if meta.KeyID != after {
			t.Errorf("worker %d's new object is wrapped by %s, want %s", w, meta.KeyID, after)
		}
	}
	keks, err := hostB.Keys().KEKs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keks {
		if k.ID == before {
			t.Errorf("the old KEK %s is still in the token after the rotation", before)
		}
	}
	t.Logf("%d objects written by two workers around the rotation %s -> %s (%s), all readable by both", len(all), before, after, res.Summary)
}
