package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// recordingSignaler records starts; err, if set, refuses them.
type recordingSignaler struct {
	starts []forward.Start
	err    error
}

func (r *recordingSignaler) SignalWithStart(_ context.Context, s forward.Start) error {
	if r.err != nil {
		return r.err
	}
	r.starts = append(r.starts, s)
	return nil
}

func (r *recordingSignaler) Signal(context.Context, string, workflows.AlertSignalInput) (bool, error) {
	return true, nil
}

func TestDeadLettersCommands(t *testing.T) {
	dir := t.TempDir()
	q, err := spool.OpenDeadLetters(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := forward.Record{Key: "container-compromise:web-1", Playbook: "container-compromise", OpenedBy: "falco/f1",
		Alert: workflows.Alert{ID: "a-1", Rule: "Shell <in> container", Severity: "high", Asset: "web-1", ReceivedAt: time.Now().UTC()}}
	data, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []spool.DeadLetter{
		{ID: "12.0", Key: rec.Key, Owner: "falco", Reason: "Blob data size exceeds limit.", At: time.Now().UTC(), Data: data},
		{ID: "3.1", Key: "k", Owner: "wazuh", Reason: "spooled record cannot be decoded", At: time.Now().UTC(), Data: []byte("{not json")},
	} {
		if err := q.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := deadLettersList(q, false, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "3.1 ") || !strings.HasPrefix(lines[2], "12.0 ") {
		t.Fatalf("list (oldest spool id first):\n%s", out.String())
	}
	out.Reset()
	if err := deadLetterShow(q, "12.0", &out); err != nil || !strings.Contains(out.String(), `"Rule": "Shell <in> container"`) || !strings.Contains(out.String(), "Blob data size") {
		t.Fatalf("show: %v\n%s", err, out.String())
	}
	var ee *exitError
	if err := deadLetterShow(q, "99.0", &out); !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("show of an unknown id: %v", err)
	}

	// A replay Temporal still refuses keeps the dead letter.
	refusing := &recordingSignaler{err: serviceerror.NewInvalidArgument("Blob data size exceeds limit.")}
	if err := deadLetterReplay(context.Background(), q, refusing, "tq", "12.0", &out); err == nil || !strings.Contains(err.Error(), "kept") {
		t.Fatalf("refused replay: %v", err)
	}
	if _, err := q.Get("12.0"); err != nil {
		t.Fatalf("refused replay lost the dead letter: %v", err)
	}
	// An undecodable record cannot be replayed.
	if err := deadLetterReplay(context.Background(), q, &recordingSignaler{}, "tq", "3.1", &out); err == nil {
		t.Fatal("replayed an undecodable record")
	}
	// A replay that succeeds starts the incident and drops the dead letter.
	sig := &recordingSignaler{}
	if err := deadLetterReplay(context.Background(), q, sig, "tq", "12.0", &out); err != nil {
		t.Fatal(err)
	}
	if len(sig.starts) != 1 || sig.starts[0].WorkflowID != workflows.IncidentWorkflowID(rec.Key) || sig.starts[0].TaskQueue != "tq" || sig.starts[0].Signal.Alerts[0].ID != "a-1" {
		t.Fatalf("replay started %+v", sig.starts)
	}
	if _, err := q.Get("12.0"); !errors.Is(err, spool.ErrNoDeadLetter) {
		t.Fatalf("replayed dead letter still there: %v", err)
	}
	if err := q.Drop("3.1"); err != nil || q.Count() != 0 {
		t.Fatalf("drop: %v, %d left", err, q.Count())
	}
	var found bool
	for _, c := range newRoot().Commands() {
		if c.Name() == "intake" {
			for _, sub := range c.Commands() {
				found = found || sub.Name() == "dead-letters" && len(sub.Commands()) == 4
			}
		}
	}
	if !found {
		t.Error("starter intake dead-letters list|show|replay|drop is not registered")
	}
}
