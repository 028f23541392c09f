package pve

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/luthermonson/go-proxmox"
)

// TestControlTaskTimes changes task durations at run time through
// /_lab/tasks: only snapshots become slow, and reset restores the start
// durations.
func TestControlTaskTimes(t *testing.T) {
	s := startSim(t, Options{TaskDuration: InstantTasks})
	ctx := testCtx(t)
	ct, err := (&proxmox.Node{}).New(responder(s), "pve1").Container(ctx, 900)
	if err != nil {
		t.Fatal(err)
	}
	control := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, s.ControlURL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+LabControlToken)
		res, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	finished := func(task *proxmox.Task) bool {
		t.Helper()
		if err := task.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		return task.IsCompleted
	}

	snap, err := ct.NewSnapshot(ctx, "before")
	if err != nil || !finished(snap) {
		t.Fatalf("snapshot with instant tasks: finished=%v err=%v", snap.IsCompleted, err)
	}

	for _, bad := range []string{`{"default":"soon"}`, `{"by_type":{"vzsnapshot":"-1s"}}`, `[`} {
		if st, body := control("PUT", "/tasks", bad); st != http.StatusBadRequest {
			t.Fatalf("PUT /tasks %s = %d %s, want 400", bad, st, body)
		}
	}
	st, body := control("PUT", "/tasks", `{"default":"instant","by_type":{"vzsnapshot":"10m"}}`)
	want := TaskTimes{Default: InstantTasks, ByType: map[string]time.Duration{"vzsnapshot": 10 * time.Minute}}
	if st != http.StatusOK || !reflect.DeepEqual(s.TaskTimes(), want) {
		t.Fatalf("PUT /tasks = %d %s; task times %+v", st, body, s.TaskTimes())
	}
	if st, body := control("GET", "/tasks", ""); st != http.StatusOK || body != `{"default":"instant","by_type":{"vzsnapshot":"10m0s"}}` {
		t.Fatalf("GET /tasks = %d %s", st, body)
	}

	slow, err := ct.NewSnapshot(ctx, "slow")
	if err != nil || finished(slow) {
		t.Fatalf("snapshot after PUT /tasks: finished=%v err=%v, want running", slow.IsCompleted, err)
	}
	if err := slow.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stop, err := ct.Stop(ctx)
	if err != nil || !finished(stop) {
		t.Fatalf("vzstop after PUT /tasks: finished=%v err=%v, want instant", stop.IsCompleted, err)
	}

	if st, _ := control("POST", "/reset", ""); st != http.StatusOK {
		t.Fatalf("reset = %d", st)
	}
	if got := s.TaskTimes(); !reflect.DeepEqual(got, TaskTimes{Default: InstantTasks}) {
		t.Fatalf("task times after reset = %+v", got)
	}
	if again, err := ct.NewSnapshot(ctx, "after-reset"); err != nil || !finished(again) {
		t.Fatalf("snapshot after reset: finished=%v err=%v, want instant", again.IsCompleted, err)
	}
}
