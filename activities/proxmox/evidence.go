package proxmox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
)

// maxLogLines bounds one collected log (syslog, firewall log, task log).
const maxLogLines = 20000

// logPageSize is the page size of log reads.
const logPageSize = 1000

type logLine struct {
	N int    `json:"n"`
	T string `json:"t"`
}

// readLog reads a paged PVE log (start/limit) up to maxLogLines.
func (x *call) readLog(ctx context.Context, path string, limit int) ([]logLine, error) {
	var out []logLine
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for start := 0; start < limit; start += logPageSize {
		var page []logLine
		if err := x.get(ctx, fmt.Sprintf("%s%sstart=%d&limit=%d", path, sep, start, logPageSize), &page); err != nil {
			return nil, err
		}
		out = append(out, page...)
		x.beat(ctx)
		if len(page) < logPageSize {
			break
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// evidenceItem is one collected piece: its name and the API call.
type evidenceItem struct {
	name string
	api  string
	read func(ctx context.Context) (any, error)
}

// CollectEvidence implements [activities.PVECollectEvidence]: the
// container's config, status, interfaces, snapshots, firewall options,
// rules and log, the node's syslog of the window, and the container's tasks
// of the window with their logs, each stored as one JSON evidence item,
// plus a manifest. Only references are returned.
func (a *Activities) CollectEvidence(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVECollectEvidenceParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.begin(ctx, in, activities.PVECollectEvidence, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	window := p.Window
	now := a.now().UTC()
	since := now.Add(-window)
	raw := func(path string) func(ctx context.Context) (any, error) {
		return func(ctx context.Context) (any, error) {
			var v json.RawMessage
			if err := x.get(ctx, path, &v); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
	logOf := func(path string) func(ctx context.Context) (any, error) {
		return func(ctx context.Context) (any, error) { return x.readLog(ctx, path, maxLogLines) }
	}
	ct := x.ct
	// No "until": the syslog bound has whole seconds, and lines written in
	// the current second would fall after it.
	syslogPath := fmt.Sprintf("/nodes/%s/syslog?since=%s", ct.Node, urlTime(since))
	fwLogPath := ct.path(fmt.Sprintf("/firewall/log?since=%d&until=%d", since.Unix(), now.Unix()))
	tasksPath := fmt.Sprintf("/nodes/%s/tasks?vmid=%d&since=%d&source=all&limit=500", ct.Node, ct.VMID, since.Unix())
	items := []evidenceItem{
		{"config", "GET " + ct.path("/config"), raw(ct.path("/config"))},
		{"status", "GET " + ct.path("/status/current"), raw(ct.path("/status/current"))},
		{"interfaces", "GET " + ct.path("/interfaces"), func(ctx context.Context) (any, error) {
			st, err := x.status(ctx)
			if err != nil {
				return nil, err
			}
			if st != "running" {
				return map[string]string{"note": "container is " + st + ": no live interfaces"}, nil
			}
			return raw(ct.path("/interfaces"))(ctx)
		}},
		{"snapshots", "GET " + ct.path("/snapshot"), raw(ct.path("/snapshot"))},
		{"firewall-options", "GET " + ct.path("/firewall/options"), raw(ct.path("/firewall/options"))},
		{"firewall-rules", "GET " + ct.path("/firewall/rules"), raw(ct.path("/firewall/rules"))},
		{"firewall-log", "GET " + fwLogPath, logOf(fwLogPath)},
		{"syslog", "GET " + syslogPath, logOf(syslogPath)},
		{"tasks", "GET " + tasksPath + " and each task's log", func(ctx context.Context) (any, error) {
			var tasks []map[string]any
			if err := x.get(ctx, tasksPath, &tasks); err != nil {
				return nil, err
			}
			type taskWithLog struct {
				Task map[string]any `json:"task"`
				Log  []logLine      `json:"log"`
			}
			out := []taskWithLog{}
			for _, t := range tasks {
				upid := str(t["upid"])
				lines, err := x.readLog(ctx, fmt.Sprintf("/nodes/%s/tasks/%s/log", ct.Node, upid), maxLogLines)
				if err != nil {
					return nil, err
				}
				out = append(out, taskWithLog{Task: t, Log: lines})
			}
			return out, nil
		}},
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", ct.VMID), "VM.Audit"); err != nil {
			return activities.ActionResult{}, err
		}
		if err := x.requirePrivs(ctx, "/nodes/"+ct.Node, "Sys.Syslog"); err != nil {
			return activities.ActionResult{}, err
		}
		var plan []string
		for _, it := range items {
			plan = append(plan, fmt.Sprintf("collect %s (%s) into the evidence locker", it.name, it.api))
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"manifest": ""}, Summary: fmt.Sprintf("dry run: would collect %d items of %s", len(items), ct)}, nil
	}
	type manifestEntry struct {
		Name string `json:"name"`
		API  string `json:"api"`
		Ref  string `json:"ref"`
	}
	var entries []manifestEntry
	var refs []string
	for _, it := range items {
		data, err := it.read(ctx)
		if err != nil {
			return activities.ActionResult{}, err
		}
		name := fmt.Sprintf("pve/%s/%s.json", evidenceName(ct), it.name)
		ref, err := a.putJSON(ctx, in.IncidentID, name, x.source(), map[string]any{
			"source": x.source(), "api": it.api, "collected_at": now.Format(time.RFC3339),
			"window": map[string]string{"since": since.Format(time.RFC3339), "until": now.Format(time.RFC3339)}, "data": data,
		})
		if err != nil {
			return activities.ActionResult{}, err
		}
		entries = append(entries, manifestEntry{Name: name, API: it.api, Ref: ref})
		refs = append(refs, ref)
		x.beat(ctx)
	}
	mref, err := a.putJSON(ctx, in.IncidentID, fmt.Sprintf("pve/%s/manifest.json", evidenceName(ct)), x.source(), map[string]any{
		"container": ct, "collected_at": now.Format(time.RFC3339), "window": window.String(), "items": entries,
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	refs = append(refs, mref)
	return activities.ActionResult{Outputs: map[string]string{"manifest": mref}, EvidenceRefs: refs,
		Summary: fmt.Sprintf("collected %d evidence items of %s (window %s)", len(entries), ct, window)}, nil
}

func evidenceName(ct *ctRef) string {
	if ct.Name != "" {
		return ct.Name
	}
	return strconv.Itoa(ct.VMID)
}

// urlTime renders a syslog bound ("2006-01-02 15:04:05", UTC) for a query.
func urlTime(t time.Time) string {
	return url.QueryEscape(t.UTC().Format("2006-01-02 15:04:05"))
}
