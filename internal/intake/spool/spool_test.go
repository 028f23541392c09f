package spool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func items(key string, data ...string) []Item {
	out := make([]Item, len(data))
	for i, d := range data {
		out[i] = Item{Key: key, Data: []byte(d)}
	}
	return out
}

func datas(its []Item) []string {
	out := make([]string, len(its))
	for i, it := range its {
		out[i] = string(it.Data)
	}
	return out
}

func TestAppendAckReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, Options{})
	if _, err := s.Append(ctx, items("a", "a1", "a2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, items("b", "b1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, items("a", "a3")); err != nil {
		t.Fatal(err)
	}
	got := s.Pending(100, nil)
	if want := []string{"a1", "a2", "b1", "a3"}; !slices.Equal(datas(got), want) {
		t.Fatalf("pending = %v, want %v", datas(got), want)
	}
	if got := datas(s.Pending(100, func(k string) bool { return k == "a" })); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("pending without a = %v", got)
	}
	if err := s.Ack([]ID{got[0].ID, got[2].ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, items("a", "late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	s2 := open(t, dir, Options{})
	if got := datas(s2.Pending(100, nil)); !slices.Equal(got, []string{"a2", "a3"}) {
		t.Fatalf("after reopen pending = %v, want [a2 a3]", got)
	}
	// New ids never collide with recovered ones.
	newIDs, err := s2.Append(ctx, items("c", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range s2.Pending(100, nil)[:2] {
		if it.ID.Seq >= newIDs[0].Seq {
			t.Fatalf("new id %v not after recovered %v", newIDs[0], it.ID)
		}
	}
}

func TestAckOnce(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	got, err := s.Append(context.Background(), items("k", "x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(got[:1]); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(filepath.Join(dir, ackName))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	if err := s.Ack([]ID{got[0], got[0], {Seq: 999}}); err != nil {
		t.Fatal(err)
	}
	if size() != before {
		t.Fatal("a repeated or unknown ack was written again")
	}
	if st := s.Stats(); st.Pending != 1 {
		t.Fatalf("pending = %d, want 1", st.Pending)
	}
}

func TestTornTailDiscarded(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for i := range 3 {
		if _, err := s.Append(context.Background(), items("k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, segPrefix+"*"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	fi, _ := os.Stat(segs[0])
	// A crash in the middle of writing a fourth record: its frame header
	// promises more bytes than follow.
	torn := appendFrame(nil, encodeRecord(nil, 4, items("k", "torn-record")))
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(torn[:len(torn)-3])
	f.Close()

	s2 := open(t, dir, Options{})
	if got := datas(s2.Pending(10, nil)); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("pending = %v", got)
	}
	if fi2, _ := os.Stat(segs[0]); fi2.Size() != fi.Size() {
		t.Fatalf("torn tail not cut: %d bytes, want %d", fi2.Size(), fi.Size())
	}
	if _, err := s2.Append(context.Background(), items("k", "3")); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3 := open(t, dir, Options{})
	if got := datas(s3.Pending(10, nil)); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("after second reopen pending = %v", got)
	}
}

func TestCorruptSealedSegmentFailsOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 1})
	for i := range 3 {
		if _, err := s.Append(context.Background(), items("k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, segPrefix+"*"))
	if len(segs) != 3 {
		t.Fatalf("segments: %v", segs)
	}
	b, _ := os.ReadFile(segs[0])
	b[len(b)-1] ^= 0xff
	os.WriteFile(segs[0], b, 0o600)
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("opened a spool with a corrupt sealed segment")
	}
}

func TestGroupCommit(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	const n = 64
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	s.writeHook = func(f *os.File, b []byte) error {
		if first {
			// Hold the first commit until every other append is queued.
			first = false
			close(entered)
			<-release
		}
		_, err := f.Write(b)
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[ID]bool{}
	appendOne := func(i int) {
		got, err := s.Append(context.Background(), items("k", fmt.Sprint(i)))
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		seen[got[0]] = true
		mu.Unlock()
	}
	wg.Go(func() { appendOne(0) })
	<-entered
	for i := 1; i < n; i++ {
		wg.Go(func() { appendOne(i) })
	}
	for deadline := time.Now().Add(10 * time.Second); len(s.reqs) < n-1; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d appends queued", len(s.reqs))
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	st := s.Stats()
	if len(seen) != n || st.Pending != n {
		t.Fatalf("ids %d pending %d, want %d", len(seen), st.Pending, n)
	}
	if st.Commits != 2 {
		t.Fatalf("commits = %d, want 2 (one held, then one group of %d)", st.Commits, n-1)
	}
}

func TestFullThenDrained(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{MaxBytes: 400, SegmentBytes: 150})
	var accepted []ID
	for i := 0; ; i++ {
		got, err := s.Append(ctx, items("k", fmt.Sprintf("%040d", i)))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted = append(accepted, got...)
		if i > 100 {
			t.Fatal("never full")
		}
	}
	if len(accepted) < 3 {
		t.Fatalf("only %d accepted before full", len(accepted))
	}
	if err := s.Ack(accepted); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, items("k", "after drain")); err != nil {
		t.Fatalf("append after the spool drained: %v", err)
	}
	if st := s.Stats(); st.Segments != 1 || st.Pending != 1 {
		t.Fatalf("stats after drain %+v", st)
	}
}

func TestDiskErrorThenRecovery(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, Options{})
	if _, err := s.Append(ctx, items("k", "before")); err != nil {
		t.Fatal(err)
	}
	s.writeHook = func(f *os.File, b []byte) error {
		f.Write(b[:len(b)/2]) // a partial write, then the disk fails
		return errors.New("EIO")
	}
	if _, err := s.Append(ctx, items("k", "lost")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append on a failing disk: %v", err)
	}
	s.writeHook = nil
	if _, err := s.Append(ctx, items("k", "after")); err != nil {
		t.Fatal(err)
	}
	if got := datas(s.Pending(10, nil)); !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("pending = %v", got)
	}
	s.Close()
	s2 := open(t, dir, Options{})
	if got := datas(s2.Pending(10, nil)); !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("after reopen pending = %v", got)
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, Options{SegmentBytes: 256, AckCompactBytes: 512})
	for i := range 200 {
		got, err := s.Append(ctx, items("k", fmt.Sprintf("item-%03d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(got); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Segments > 2 || st.Pending != 0 {
		t.Fatalf("stats %+v: delivered segments not removed", st)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, segPrefix+"*"))
	if len(segs) != st.Segments {
		t.Fatalf("%d segment files, stats say %d", len(segs), st.Segments)
	}
	if fi, _ := os.Stat(filepath.Join(dir, ackName)); fi.Size() > 512+100 {
		t.Fatalf("ack log %d bytes: not compacted", fi.Size())
	}
	s.Close()
	s2 := open(t, dir, Options{})
	if n := len(s2.Pending(1000, nil)); n != 0 {
		t.Fatalf("%d delivered items came back", n)
	}
}

// TestRandomReopen compares the spool with a model over random appends,
// acks and reopens.
func TestRandomReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	opts := Options{SegmentBytes: 300, AckCompactBytes: 200, NoSync: true}
	s := open(t, dir, opts)
	var model []string // pending data in order
	next := 0
	for step := range 600 {
		switch r := rng.IntN(10); {
		case r < 5:
			n := 1 + rng.IntN(3)
			var its []Item
			for range n {
				d := fmt.Sprintf("d%d", next)
				next++
				its = append(its, Item{Key: fmt.Sprint(rng.IntN(4)), Data: []byte(d)})
				model = append(model, d)
			}
			if _, err := s.Append(ctx, its); err != nil {
				t.Fatal(err)
			}
		case r < 9:
			pend := s.Pending(1000, nil)
			var ack []ID
			var keep []string
			for _, it := range pend {
				if rng.IntN(2) == 0 {
					ack = append(ack, it.ID)
				} else {
					keep = append(keep, string(it.Data))
				}
			}
			if err := s.Ack(ack); err != nil {
				t.Fatal(err)
			}
			model = keep
		default:
			s.Close()
			s = open(t, dir, opts)
		}
		if got := datas(s.Pending(1000, nil)); !slices.Equal(got, model) && !(len(got) == 0 && len(model) == 0) {
			t.Fatalf("step %d: pending %v, model %v", step, got, model)
		}
		checkKeyIndex(t, s, fmt.Sprintf("step %d", step))
	}
}

// checkKeyIndex compares the per-key index (Keys, Leading) with the
// pending items: the keys in the order of their oldest pending item, and
// each key's leading items.
func checkKeyIndex(t *testing.T, s *Spool, at string) {
	t.Helper()
	pend := s.Pending(1<<30, nil)
	var wantKeys []string
	byKey := map[string][]string{}
	for _, it := range pend {
		if byKey[it.Key] == nil {
			wantKeys = append(wantKeys, it.Key)
		}
		byKey[it.Key] = append(byKey[it.Key], string(it.Data))
	}
	var keys []string
	s.Keys(func(k KeyInfo) bool {
		keys = append(keys, k.Key)
		if k.Pending != len(byKey[k.Key]) {
			t.Fatalf("%s: key %s: Pending = %d, want %d", at, k.Key, k.Pending, len(byKey[k.Key]))
		}
		return true
	})
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("%s: Keys = %v, want %v (pending %v)", at, keys, wantKeys, datas(pend))
	}
	for _, n := range []int{1, 2, 1 << 30} {
		var want []string
		for _, k := range wantKeys {
			want = append(want, byKey[k][:min(n, len(byKey[k]))]...)
		}
		if got := datas(s.Leading(keys, n)); !slices.Equal(got, want) {
			t.Fatalf("%s: Leading(%v, %d) = %v, want %v", at, keys, n, got, want)
		}
	}
}

// TestKeysInOrderOfOldestItem: keys are listed by their oldest pending
// item, so a key whose leading items are acknowledged goes behind the
// keys waiting longer; Keys stops when visit says so; Leading returns the
// keys asked for, in that order, and nothing for a key without pending
// items.
func TestKeysInOrderOfOldestItem(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, Options{})
	var ids []ID
	for _, kd := range [][2]string{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}, {"c", "c1"}, {"b", "b2"}, {"a", "a3"}} {
		id, err := s.Append(ctx, items(kd[0], kd[1]))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id...)
	}
	keys := func() []string {
		var out []string
		s.Keys(func(k KeyInfo) bool { out = append(out, k.Key); return true })
		return out
	}
	if got := keys(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("keys = %v, want a, b, c", got)
	}
	// a1 delivered: a's oldest is now a2, after b1 and before c1.
	if err := s.Ack(ids[:1]); err != nil {
		t.Fatal(err)
	}
	if got := keys(); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Fatalf("after a1 keys = %v, want b, a, c", got)
	}
	// a2 too: a's oldest is a3, the newest item of all.
	if err := s.Ack(ids[2:3]); err != nil {
		t.Fatal(err)
	}
	if got := keys(); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("after a2 keys = %v, want b, c, a", got)
	}
	var first []string
	s.Keys(func(k KeyInfo) bool { first = append(first, k.Key); return len(first) < 2 })
	if !slices.Equal(first, []string{"b", "c"}) {
		t.Fatalf("Keys stopped after %v, want b, c", first)
	}
	if got := datas(s.Leading([]string{"a", "zz", "b"}, 1)); !slices.Equal(got, []string{"a3", "b1"}) {
		t.Fatalf("Leading(a, zz, b; 1) = %v, want a3, b1", got)
	}
	// c delivered: c leaves the list; the order survives a reopen.
	if err := s.Ack(ids[3:4]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, Options{})
	if got := keys(); !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("after reopen keys = %v, want b, a", got)
	}
	checkKeyIndex(t, s, "after reopen")
}

// TestAppendDuringAckSync: while an Ack waits for its fsync, appends are
// committed and answered, and Pending answers; the Ack then completes and
// its items stay acknowledged across a reopen.
func TestAppendDuringAckSync(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, Options{})
	ids, err := s.Append(ctx, items("k", "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	inSync, release := make(chan struct{}), make(chan struct{})
	s.ackSyncHook = func() { close(inSync); <-release }
	acked := make(chan error, 1)
	go func() { acked <- s.Ack(ids[:1]) }()
	<-inSync
	appended := make(chan error, 1)
	go func() { _, err := s.Append(ctx, items("k", "c")); appended <- err }()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		<-acked
		t.Fatal("an append waited for an Ack's fsync")
	}
	if got := datas(s.Pending(10, nil)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("pending during the ack's fsync = %v, want a, b, c", got)
	}
	close(release)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	s.ackSyncHook = nil
	if got := datas(s.Pending(10, nil)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("pending after the ack = %v, want b, c", got)
	}
	s.Close()
	s2 := open(t, dir, Options{})
	if got := datas(s2.Pending(10, nil)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after reopen pending = %v, want b, c", got)
	}
}

// TestKeyInfoOldest: a key's Oldest is when its oldest unacknowledged
// item was appended and Pending counts its unacknowledged items;
// LastAppend is when items were last appended.
func TestKeyInfoOldest(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{NoSync: true})
	info := func() KeyInfo {
		var out KeyInfo
		s.Keys(func(k KeyInfo) bool { out = k; return false })
		return out
	}
	t0 := time.Now()
	first, err := s.Append(ctx, items("a", "a1"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	t1 := time.Now()
	if _, err := s.Append(ctx, items("a", "a2", "a3")); err != nil {
		t.Fatal(err)
	}
	if k := info(); k.Oldest.Before(t0) || !k.Oldest.Before(t1) || k.Pending != 3 {
		t.Fatalf("before the ack: %+v, want the oldest appended in [%s, %s) and 3 pending", k, t0, t1)
	}
	if err := s.Ack(first); err != nil {
		t.Fatal(err)
	}
	if k := info(); k.Oldest.Before(t1) || k.Pending != 2 {
		t.Fatalf("after a1's ack: %+v, want the oldest appended after %s and 2 pending", k, t1)
	}
	if la := s.LastAppend(); la.Before(t1) {
		t.Errorf("LastAppend = %s, want after %s", la, t1)
	}
}

// Decoded stays in memory: pending items carry it, acknowledging an item
// drops it with Data, and the disk has only Data, so recovered items have
// none.
func TestDecodedInMemoryOnly(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, Options{})
	in := items("a", "a1", "a2")
	in[0].Decoded, in[1].Decoded = "decoded a1", "decoded a2"
	ids, err := s.Append(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Pending(100, nil)
	if len(got) != 2 || got[0].Decoded != "decoded a1" || got[1].Decoded != "decoded a2" {
		t.Fatalf("pending after append = %+v, want both items with their Decoded", got)
	}
	if err := s.Ack(ids[:1]); err != nil {
		t.Fatal(err)
	}
	// An acknowledged item's memory goes with it.
	s.mu.Lock()
	acked := s.segs[0].entries[0]
	s.mu.Unlock()
	if !acked.acked || acked.Data != nil || acked.Decoded != nil {
		t.Fatalf("acknowledged entry %+v still holds its Data or Decoded", acked.Item)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got = open(t, dir, Options{}).Pending(100, nil)
	if len(got) != 1 || string(got[0].Data) != "a2" || got[0].Decoded != nil {
		t.Fatalf("pending after reopen = %+v, want a2 with no Decoded", got)
	}
}
