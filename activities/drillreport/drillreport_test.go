package drillreport

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/activities"
)

type recordingStore struct {
	mu    sync.Mutex
	items []activities.EvidenceItem
	body  map[string]string
	fail  error
}

func (r *recordingStore) PutEvidence(_ context.Context, item activities.EvidenceItem) (string, error) {
	if r.fail != nil {
		return "", r.fail
	}
	b, err := io.ReadAll(item.Body)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.body == nil {
		r.body = map[string]string{}
	}
	r.items = append(r.items, item)
	r.body[item.Name] = string(b)
	return "evidence://" + item.IncidentID + "/" + item.Name, nil
}

func TestReport(t *testing.T) {
	at := time.Date(2025, 3, 3, 3, 0, 0, 0, time.UTC)
	rep := Report{
		Drill: "canary", Playbook: "container-compromise", Target: "drill-canary", Mode: "live", IncidentID: "drill-canary-20250303T030000Z-abc",
		StartedAt: at, FinishedAt: at.Add(5 * time.Minute), State: "resolved", Reason: "all phases|completed",
		Phases: []Phase{{Name: "containment", Reached: true, Start: at, End: at.Add(75 * time.Second), Duration: 75 * time.Second}, {Name: "recovery"}},
		Objectives: []ObjectiveResult{{Name: "contain_within", Within: time.Minute, Reached: true, Measured: 75 * time.Second,
			Detail: "took 1m15s, over 1m0s by 15s"}},
		AutoApproved:    []Approval{{StepID: "shutdown", At: at, Accepted: true}},
		WaitedForPeople: []string{"restore"},
		Failures:        []string{"objective contain_within 1m0s: took 1m15s | over"},
	}
	store := &recordingStore{}
	a := &Activities{Evidence: store}
	res, err := a.Report(context.Background(), Input{Report: rep})
	if err != nil {
		t.Fatal(err)
	}
	if len(store.items) != 2 || res.MarkdownRef != "evidence://"+rep.IncidentID+"/drill/canary/report.md" || res.JSONRef == "" {
		t.Fatalf("stored %d items, result %+v", len(store.items), res)
	}
	for _, it := range store.items {
		if it.IncidentID != rep.IncidentID || it.Class != activities.ClassOperational || it.CollectedBy != ReportCollector || it.Source != "drill:canary" {
			t.Errorf("item = %+v", it)
		}
	}
	md := store.body["drill/canary/report.md"]
	for _, want := range []string{"# Drill canary: FAILED", "| contain_within | 1m0s | 1m15s | FAIL: took 1m15s, over 1m0s by 15s |",
		"| recovery | not reached | | |", "- shutdown approved by system:drill", "- restore waited for a person", `| Incident state | resolved \(all phases\|completed\) |`, `- objective contain\_within 1m0s: took 1m15s \| over`} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	var back Report
	if err := json.Unmarshal([]byte(store.body["drill/canary/report.json"]), &back); err != nil || back.Objectives[0].Measured != 75*time.Second {
		t.Errorf("JSON report = %+v, %v", back, err)
	}

	if _, err := a.Report(context.Background(), Input{}); err == nil {
		t.Error("a report without incident id was stored")
	}
	store.fail = errors.New("disk full")
	if _, err := a.Report(context.Background(), Input{Report: rep}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err = %v, want the store's error", err)
	}
}
