//go:build integration

package intake

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// TestTemporalLessThanAttack: the '<'-label alert under 1 MiB (six-fold
// in a payload without the defences, over the server's 2 MB limit, retried
// forever in front of every later alert of its asset) is refused with 413;
// an alert of '<' within the budget and a later good alert for the same
// asset are delivered and open its incident on a real server.
func TestTemporalLessThanAttack(t *testing.T) {
	c, tq := temporalSetup(t)
	e := newBudgetEnv(t, 0)
	e.forward(forward.TemporalSignaler{Client: c}, forward.Options{TaskQueue: tq, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	asset := fmt.Sprintf("lt%d", time.Now().UnixNano())
	if r := e.post("generic", genericKey, ltAttack(asset)); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("attack alert: %d %v, want 413", r.status, r.body)
	}
	var want []string
	for i, labels := range []map[string]string{{"a": strings.Repeat("<", 7<<10), "b": strings.Repeat(">", 7<<10)}, nil} {
		r := e.post("generic", genericKey, labelAlert(asset, i+1, labels))
		if r.status != http.StatusAccepted {
			t.Fatalf("alert %d: %d %v", i+1, r.status, r.body)
		}
		want = append(want, postIDs(t, r)...)
	}
	eventually(t, "spool drained", 30*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	id := workflows.IncidentWorkflowID(workflows.UnknownAssetPlaybook + ":" + asset)
	var st alertCount
	eventually(t, "incident received the alerts", 30*time.Second, func() bool {
		st = queryCount(t, c, id)
		return st.Total >= len(want)
	})
	if !slices.Equal(st.IDs, want) {
		t.Fatalf("incident received %v, want %v", st.IDs, want)
	}
	if n := e.dl.Count(); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// TestTemporalRefusedRecordDeadLettered: a spooled record the real server
// refuses for good (a label over its 2 MB blob limit, as a record spooled
// before the byte budgets would be) goes to the dead-letter queue, counted
// in the metrics, and the records behind it, of its key and of another,
// are delivered. (The SDK retries a refusal of the message size within
// the call's timeout, so under load one attempt can take that long.)
func TestTemporalRefusedRecordDeadLettered(t *testing.T) {
	c, tq := temporalSetup(t)
	e := newBudgetEnv(t, 0)
	key := fmt.Sprintf("container-compromise:dl%d", time.Now().UnixNano())
	other := key + "-other"
	mk := func(k, id, label string) spool.Item {
		r := forward.Record{Key: k, Playbook: "container-compromise", Mapped: true, OpenedBy: "generic/g1",
			Alert: workflows.Alert{ID: id, Source: "generic", Rule: "ContainerShell", Severity: "high", Asset: "web-1",
				Labels: map[string]string{"a": label}, ReceivedAt: time.Now().UTC()}}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return spool.Item{Key: k, Data: b, Owner: "generic"}
	}
	for _, it := range []spool.Item{mk(key, "huge", strings.Repeat("x", 2100<<10)), mk(key, "behind", "ok"), mk(other, "elsewhere", "ok")} {
		if _, err := e.sp.Append(context.Background(), []spool.Item{it}); err != nil {
			t.Fatal(err)
		}
	}
	e.forward(forward.TemporalSignaler{Client: c}, forward.Options{TaskQueue: tq, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	eventually(t, "spool drained", 180*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	for wid, ids := range map[string][]string{workflows.IncidentWorkflowID(key): {"behind"}, workflows.IncidentWorkflowID(other): {"elsewhere"}} {
		var st alertCount
		eventually(t, "delivered to "+wid, 30*time.Second, func() bool { st = queryCount(t, c, wid); return st.Total >= len(ids) })
		if !slices.Equal(st.IDs, ids) {
			t.Errorf("%s received %v, want %v", wid, st.IDs, ids)
		}
	}
	list, err := e.dl.List()
	if err != nil || len(list) != 1 || list[0].Key != key || list[0].Owner != "generic" {
		t.Fatalf("dead letters %+v (%v)", list, err)
	}
	t.Logf("refusal of the start: %s", list[0].Reason)

	// A resolved alert goes as a signal alone: one 2.1 MB payload, under
	// the gRPC message limit, over the server's 2 MB blob limit.
	resolved := func(id, label string) spool.Item {
		it := mk(key, id, label)
		r, _ := forward.UnmarshalRecord(it.Data)
		r.Resolved = true
		it.Data, _ = r.Marshal()
		return it
	}
	for _, it := range []spool.Item{resolved("huge-resolved", strings.Repeat("x", 2100<<10)), resolved("resolved-behind", "ok")} {
		if _, err := e.sp.Append(context.Background(), []spool.Item{it}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "spool drained", 180*time.Second, func() bool { return e.sp.Stats().Pending == 0 })
	wid := workflows.IncidentWorkflowID(key)
	var st alertCount
	eventually(t, "resolved alert behind the refused one", 30*time.Second, func() bool { st = queryCount(t, c, wid); return st.Total >= 2 })
	if !slices.Equal(st.IDs, []string{"behind", "resolved-behind"}) {
		t.Errorf("%s received %v", wid, st.IDs)
	}
	if list, err = e.dl.List(); err != nil || len(list) != 2 {
		t.Fatalf("dead letters %+v (%v)", list, err)
	}
	t.Logf("refusal of the signal: %s", list[1].Reason)
	if v := metricValue(t, e.reg, "iru_intake_dead_letters_total", map[string]string{"detector": "generic"}); v != 2 {
		t.Errorf("iru_intake_dead_letters_total{generic} = %v", v)
	}
	if v := metricValue(t, e.reg, "iru_intake_dead_letters", nil); v != 2 {
		t.Errorf("iru_intake_dead_letters = %v", v)
	}
}

// TestTemporalQuotaFloodOthersOpen: one detector flooding the intake hits
// its spool quota (503, Retry-After) while another detector's alert is
// accepted and opens its incident on a real server.
func TestTemporalQuotaFloodOthersOpen(t *testing.T) {
	c, tq := temporalSetup(t)
	e := newBudgetEnv(t, 64<<10)
	prefix := fmt.Sprintf("quota%d-", time.Now().UnixNano())
	big := map[string]string{"blob": strings.Repeat("x", 7<<10)}
	refused := 0
	for i := range 40 {
		r := e.post("flood", floodKey, labelAlert(prefix+"flood", i, big))
		switch r.status {
		case http.StatusAccepted:
		case http.StatusServiceUnavailable:
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			refused++
		default:
			t.Fatalf("flood post %d: %d %v", i, r.status, r.body)
		}
	}
	if refused == 0 {
		t.Fatal("the flooding detector never hit its quota")
	}
	r := e.post("calm", calmKey, labelAlert(prefix+"calm", 0, nil))
	if r.status != http.StatusAccepted {
		t.Fatalf("other detector during the flood: %d %v", r.status, r.body)
	}
	e.forward(forward.TemporalSignaler{Client: c}, forward.Options{TaskQueue: tq})
	id := workflows.IncidentWorkflowID(workflows.UnknownAssetPlaybook + ":" + prefix + "calm")
	var st alertCount
	eventually(t, "the other detector's incident", 30*time.Second, func() bool {
		if e.sp.Stats().Pending > 0 {
			return false
		}
		st = queryCount(t, c, id)
		return st.Total >= 1
	})
	if !slices.Equal(st.IDs, postIDs(t, r)) {
		t.Fatalf("incident received %v", st.IDs)
	}
}
