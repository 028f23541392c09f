package forward

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"google.golang.org/protobuf/proto"

	"github.com/iru-responder/responder/internal/codec"
	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// poison refuses for good every call carrying an alert whose rule is
// "poison", as Temporal refuses a payload over its blob size limit.
func poison(f *fakeSignaler) {
	f.fail = nil
	f.refuse = func(alerts []workflows.Alert) error {
		if slices.ContainsFunc(alerts, func(a workflows.Alert) bool { return a.Rule == "poison" }) {
			return fmt.Errorf("forward: signal with start: %w", serviceerror.NewInvalidArgument("Blob data size exceeds limit."))
		}
		return nil
	}
}

func poisoned(key string, n int) Record {
	r := rec(key, n, false)
	r.Alert.Rule = "poison"
	return r
}

// TestRefusedItemDeadLetteredOthersFlow: a batch Temporal refuses for good
// is split; only the item at fault goes to the dead-letter queue (durably,
// whole, with the reason) and the items behind it, of its key and of
// others, are delivered in order, without waiting for a backoff.
func TestRefusedItemDeadLetteredOthersFlow(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	dl, err := spool.OpenDeadLetters(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := poisoned("k", 1)
	appendRecords(t, sp, rec("k", 0, false), bad, rec("k", 2, false), rec("other", 3, false))
	appendRecords(t, sp, rec("k", 4, false))
	fake := newFake()
	poison(fake)
	var mu sync.Mutex
	var heard []spool.DeadLetter
	fw := New(sp, fake, Options{DeadLetters: dl, MinBackoff: time.Hour, MaxBackoff: time.Hour,
		OnDeadLetter: func(d spool.DeadLetter) { mu.Lock(); heard = append(heard, d); mu.Unlock() }})
	runUntil(t, fw, sp, func() bool { return sp.Stats().Pending == 0 })

	if got := fake.delivered("incident:k"); !slices.Equal(got, []string{"k-0000", "k-0002", "k-0004"}) {
		t.Fatalf("key k delivered %v, want the items around the refused one, in order", got)
	}
	if got := fake.delivered("incident:other"); len(got) != 1 {
		t.Fatalf("other key delivered %v", got)
	}
	list, err := dl.List()
	if err != nil || len(list) != 1 || list[0].Key != "k" || !strings.Contains(list[0].Reason, "Blob data size exceeds limit") {
		t.Fatalf("dead letters %+v (%v)", list, err)
	}
	again, err := spool.OpenDeadLetters(dir, 0) // what the starter reads
	if err != nil {
		t.Fatal(err)
	}
	got, err := again.Get(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := bad.Marshal()
	if r, err := UnmarshalRecord(got.Data); err != nil || r.Alert.ID != bad.Alert.ID || string(got.Data) != string(want) {
		t.Fatalf("dead letter data is not the spooled record: %v", err)
	}
	if st := fw.Stats(); st.DeadLettered != 1 || st.Delivered != 4 {
		t.Errorf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 1 || heard[0].ID != list[0].ID {
		t.Errorf("OnDeadLetter heard %+v", heard)
	}
}

// TestTransientFailureNotDeadLettered: an unavailable server is retried,
// never dead-lettered.
func TestTransientFailureNotDeadLettered(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	dl, _ := spool.OpenDeadLetters(dir, 0)
	appendRecords(t, sp, rec("k", 0, false))
	fake := newFake()
	var mu sync.Mutex
	n := 0
	fake.fail = func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if n++; n <= 3 {
			return serviceerror.NewUnavailable("frontend down")
		}
		return nil
	}
	fw := New(sp, fake, Options{DeadLetters: dl, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	runUntil(t, fw, sp, func() bool { return sp.Stats().Pending == 0 })
	if dl.Count() != 0 || len(fake.delivered("incident:k")) != 1 {
		t.Fatalf("dead letters %d, delivered %v", dl.Count(), fake.delivered("incident:k"))
	}
}

// TestIsPermanent classifies refusals.
func TestIsPermanent(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{serviceerror.NewInvalidArgument("Blob data size exceeds limit."), true},
		{fmt.Errorf("wrapped: %w", serviceerror.NewInvalidArgument("bad")), true},
		{serviceerror.NewResourceExhausted(0, "grpc: received message larger than max (5000000 vs. 4194304)"), true},
		{serviceerror.NewResourceExhausted(0, "namespace rate limit exceeded"), false},
		{serviceerror.NewUnavailable("down"), false},
		{context.DeadlineExceeded, false},
		{errors.New("anything else"), false},
		{nil, false},
	} {
		if got := IsPermanent(c.err); got != c.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestSignalsBoundedInBytes: alerts at the intake's byte budget, many for
// one key, go in calls each under 256 KB as the platform's converter
// encodes them (start input and signal together).
func TestSignalsBoundedInBytes(t *testing.T) {
	sp := spoolWith(t)
	var want []string
	for i := range 40 {
		r := rec("big", i, false)
		r.Alert.Labels = map[string]string{}
		for j := range 5 {
			r.Alert.Labels[fmt.Sprint("l", j)] = strings.Repeat("<", 8<<10-16)
		}
		r.Alert.Summary = strings.Repeat("&", 4<<10-2)
		b, _ := r.Marshal()
		if err := parse.DefaultBudget().CheckRecord(len(b), ""); err != nil {
			t.Fatalf("test alert over the intake's budget: %v", err)
		}
		appendRecords(t, sp, r)
		want = append(want, r.Alert.ID)
	}
	fake := newFake()
	fw := New(sp, fake, Options{})
	runUntil(t, fw, sp, func() bool { return sp.Stats().Pending == 0 })
	dc := codec.NewPlainDataConverter()
	largest := 0
	// Every call (a SignalWithStart or, once the incident runs, a Signal)
	// counted with the start's input, as a SignalWithStart would carry.
	calls := fake.signals["incident:big"]
	if len(fake.starts) == 0 {
		t.Fatal("no SignalWithStart")
	}
	for _, alerts := range calls {
		ps, err := dc.ToPayloads(workflows.AlertSignalInput{Alerts: alerts}, fake.starts[0].Input)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, proto.Size(ps))
	}
	t.Logf("%d calls for 40 alerts; largest call %d bytes", len(calls), largest)
	if largest >= 256_000 || len(calls) < 2 {
		t.Errorf("largest call %d bytes in %d calls, want under 256000", largest, len(calls))
	}
	if got := fake.delivered("incident:big"); !slices.Equal(got, want) {
		t.Error("order not kept across byte-bounded calls")
	}
}
