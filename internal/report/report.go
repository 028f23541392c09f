// Package report renders the post-incident report: summary, timeline,
// actions and approvals with who and when, the evidence manifest with
// hashes, the audit chain head, metrics (time to detect, acknowledge,
// contain, recover) and a lessons-learned section to fill in. It renders
// Markdown for people and JSON for tools, from data gathered by the caller.
package report

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Names of the report's objects in the evidence locker: every object of
// the report lives under ObjectPrefix.
const (
	ObjectPrefix = "report/"
	MarkdownName = ObjectPrefix + "report.md"
	JSONName     = ObjectPrefix + "report.json"
)

// Evidence is one object of the incident's evidence manifest.
type Evidence struct {
	Ref         string    `json:"ref"`
	Name        string    `json:"name"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Class       string    `json:"class"`
	CollectedBy string    `json:"collected_by"`
	Source      string    `json:"source"`
	CollectedAt time.Time `json:"collected_at"`
}

// LedgerEntry is one audit ledger entry as shown in the report.
type LedgerEntry struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
	Hash    string    `json:"hash"`
}

// Incident states the report tells apart.
const (
	// StateOpen is an incident still running (the report is written in
	// its post-incident phase).
	StateOpen = "open"
	// stepSucceeded is the status of a step that ran and succeeded.
	stepSucceeded = "succeeded"
)

// Incident is the incident's own account of itself, as the caller read it.
type Incident struct {
	ID              string
	Playbook        string
	PlaybookVersion string
	Asset           string
	Severity        string
	Drill           bool
	// State is open, resolved, aborted or escalated_failed.
	State    string
	Reason   string
	OpenedAt time.Time
	ClosedAt time.Time
	Alerts   []Alert
	// Related are the other incidents on the same asset linked to this one.
	Related  []Related
	Steps    []Step
	Timeline []TimelineEntry
	// TimeToAcknowledge, TimeToContain and TimeToRecover are measured from
	// the opening (0: not reached).
	TimeToAcknowledge, TimeToContain, TimeToRecover time.Duration
	// ContainmentPhase is how long the containment phase's steps took, from
	// the first to start until the last to end (evidence steps included;
	// the time to contain ends when the containing ones took effect).
	ContainmentPhase time.Duration
}

// Alert is one distinct alert of the incident.
type Alert struct {
	Source    string    `json:"source"`
	Rule      string    `json:"rule"`
	Severity  string    `json:"severity"`
	Summary   string    `json:"summary,omitempty"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// ObservedAt is when the detector saw the event, ReceivedAt when the
	// intake accepted the alert (their difference is the time to detect).
	ObservedAt time.Time `json:"observed_at,omitzero"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// ResolvedAt is when the detector resolved the alert (zero: firing).
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// Related is another incident on the same asset, linked to this one both
// ways.
type Related struct {
	// WorkflowID is the other incident's workflow id; IncidentID its
	// human-facing id, when known.
	WorkflowID string `json:"workflow_id"`
	IncidentID string `json:"incident_id,omitempty"`
	Playbook   string `json:"playbook,omitempty"`
	// How is found (this incident found the other open when it opened) or
	// reported (the other opened later and linked itself).
	How string    `json:"how"`
	At  time.Time `json:"at"`
}

// Step is one step of the playbook and what became of it.
type Step struct {
	ID           string            `json:"id"`
	Phase        string            `json:"phase"`
	Action       string            `json:"action"`
	Status       string            `json:"status"`
	StartedAt    time.Time         `json:"started_at,omitzero"`
	FinishedAt   time.Time         `json:"finished_at,omitzero"`
	Params       map[string]string `json:"params,omitempty"`
	Outputs      map[string]string `json:"outputs,omitempty"`
	EvidenceRefs []string          `json:"evidence_refs,omitempty"`
	Summary      string            `json:"summary,omitempty"`
	Error        string            `json:"error,omitempty"`
	Compensation string            `json:"compensation,omitempty"`
	// Decisions are the approvals and the denial of the step.
	Decisions []Approval `json:"-"`
}

// TimelineEntry is one event of the incident.
type TimelineEntry struct {
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`
	SourceIP string    `json:"source_ip,omitempty"`
	What     string    `json:"what"`
	StepID   string    `json:"step_id,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// Input is everything the report is made from.
type Input struct {
	Incident Incident
	Ledger   []LedgerEntry
	Evidence []Evidence
	// LedgerVerified says whether the chain verified when the report was made.
	LedgerVerified bool
	LedgerProblem  string
	GeneratedAt    time.Time
}

// Metrics are the incident's response times.
type Metrics struct {
	TimeToDetect      string `json:"time_to_detect,omitempty"`
	TimeToAcknowledge string `json:"time_to_acknowledge,omitempty"`
	TimeToContain     string `json:"time_to_contain,omitempty"`
	TimeToRecover     string `json:"time_to_recover,omitempty"`
	ContainmentPhase  string `json:"containment_phase,omitempty"`
}

// Approval is one decision on a step.
type Approval struct {
	Step     string    `json:"step"`
	Decision string    `json:"decision"`
	By       string    `json:"by"`
	SourceIP string    `json:"source_ip,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// Report is the JSON form of the report.
type Report struct {
	IncidentID     string          `json:"incident_id"`
	Playbook       string          `json:"playbook"`
	Asset          string          `json:"asset"`
	Severity       string          `json:"severity"`
	Drill          bool            `json:"drill"`
	State          string          `json:"state"`
	Reason         string          `json:"reason,omitempty"`
	OpenedAt       time.Time       `json:"opened_at"`
	ClosedAt       time.Time       `json:"closed_at,omitzero"`
	Alerts         []Alert         `json:"alerts"`
	Related        []Related       `json:"related"`
	Steps          []Step          `json:"steps"`
	Approvals      []Approval      `json:"approvals"`
	Timeline       []TimelineEntry `json:"timeline"`
	Ledger         []LedgerEntry   `json:"ledger"`
	LedgerVerified bool            `json:"ledger_verified"`
	LedgerProblem  string          `json:"ledger_problem,omitempty"`
	Evidence       []Evidence      `json:"evidence"`
	Metrics        Metrics         `json:"metrics"`
	GeneratedAt    time.Time       `json:"generated_at"`
}

// Build assembles the report.
func Build(in Input) Report {
	st := in.Incident
	r := Report{
		IncidentID: st.ID, Playbook: st.Playbook + " v" + st.PlaybookVersion, Asset: st.Asset, Severity: st.Severity,
		Drill: st.Drill, State: st.State, Reason: st.Reason, OpenedAt: st.OpenedAt, ClosedAt: st.ClosedAt,
		Alerts: st.Alerts, Related: st.Related, Steps: st.Steps, Timeline: st.Timeline, Ledger: in.Ledger,
		LedgerVerified: in.LedgerVerified, LedgerProblem: in.LedgerProblem, Evidence: in.Evidence, GeneratedAt: in.GeneratedAt,
	}
	if r.Related == nil {
		r.Related = []Related{}
	}
	for _, s := range st.Steps {
		for _, d := range s.Decisions {
			d.Step = s.ID
			r.Approvals = append(r.Approvals, d)
		}
	}
	sort.SliceStable(r.Approvals, func(i, j int) bool { return r.Approvals[i].At.Before(r.Approvals[j].At) })
	if d := timeToDetect(st.Alerts); d > 0 {
		r.Metrics.TimeToDetect = d.Round(time.Millisecond).String()
	}
	r.Metrics.TimeToAcknowledge = dur(st.TimeToAcknowledge)
	r.Metrics.TimeToContain = dur(st.TimeToContain)
	r.Metrics.TimeToRecover = dur(st.TimeToRecover)
	r.Metrics.ContainmentPhase = dur(st.ContainmentPhase)
	return r
}

// timeToDetect is from the detector's observation of the first event to
// the platform's acceptance of its alert.
func timeToDetect(alerts []Alert) time.Duration {
	var first Alert
	for _, a := range alerts {
		if a.ObservedAt.IsZero() || a.ReceivedAt.IsZero() {
			continue
		}
		if first.ObservedAt.IsZero() || a.ObservedAt.Before(first.ObservedAt) {
			first = a
		}
	}
	return first.ReceivedAt.Sub(first.ObservedAt)
}

func dur(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.Round(time.Millisecond).String()
}

// JSON renders r as indented JSON.
func JSON(r Report) ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// Markdown renders r for people.
func Markdown(r Report) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	kind := "Incident"
	if r.Drill {
		kind = "Drill"
	}
	w("# %s report: %s\n\n", kind, cell(r.IncidentID))
	w("| | |\n|---|---|\n")
	outcome := r.State
	if outcome == StateOpen {
		outcome = "post-incident (report written before closing)"
	}
	w("| Playbook | %s |\n| Asset | %s |\n| Severity | %s |\n| Outcome | %s |\n", cell(r.Playbook), cell(r.Asset), cell(r.Severity), cell(outcome))
	if r.Reason != "" {
		w("| Reason | %s |\n", cell(r.Reason))
	}
	w("| Opened | %s |\n", ts(r.OpenedAt))
	if !r.ClosedAt.IsZero() {
		w("| Closed | %s |\n", ts(r.ClosedAt))
	}
	w("\n## Summary\n\n")
	ending := "the incident ended " + r.State
	if r.State == StateOpen {
		ending = "the incident was in its post-incident phase when this report was written"
	}
	w("%d alert(s) from %s led to the %s playbook on %s. %d of %d steps succeeded; %s.\n",
		countAlerts(r.Alerts), cell(sources(r.Alerts)), cell(r.Playbook), cell(r.Asset), countStatus(r.Steps, stepSucceeded), len(r.Steps), ending)

	w("\n## Metrics\n\n| metric | value |\n|---|---|\n")
	w("| Time to detect | %s |\n| Time to acknowledge | %s |\n| Time to contain | %s |\n| Time to recover | %s |\n",
		orDash(r.Metrics.TimeToDetect), orDash(r.Metrics.TimeToAcknowledge), orDash(r.Metrics.TimeToContain), orDash(r.Metrics.TimeToRecover))
	w("| Containment phase (its steps, evidence included) | %s |\n", orDash(r.Metrics.ContainmentPhase))

	w("\n## Alerts\n\n| source | rule | severity | count | first seen | resolved |\n|---|---|---|---|---|---|\n")
	for _, a := range r.Alerts {
		resolved := "firing"
		if !a.ResolvedAt.IsZero() {
			resolved = ts(a.ResolvedAt)
		}
		w("| %s | %s | %s | %d | %s | %s |\n", cell(a.Source), cell(a.Rule), cell(a.Severity), a.Count, ts(a.FirstSeen), resolved)
	}

	w("\n## Related incidents\n\n")
	if len(r.Related) == 0 {
		w("No other incident was open on the asset.\n")
	} else {
		w("| incident | workflow | playbook | linked | when |\n|---|---|---|---|---|\n")
		for _, x := range r.Related {
			linked := "open on the asset when this incident opened"
			switch x.How {
			case relatedReported:
				linked = "opened on the asset later"
			case relatedRerouted:
				linked = "re-routed (unknown-asset triage and the incident its alerts went to)"
			}
			w("| %s | %s | %s | %s | %s |\n", orDash(x.IncidentID), code(x.WorkflowID), orDash(x.Playbook), linked, ts(x.At))
		}
	}

	w("\n## Actions\n\n| phase | step | action | status | started | finished | summary |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Steps {
		sum := s.Summary
		if s.Error != "" {
			sum = "error: " + s.Error
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", cell(s.Phase), cell(s.ID), cell(s.Action), cell(s.Status), ts(s.StartedAt), ts(s.FinishedAt), cell(sum))
	}

	w("\n## Approvals\n\n")
	if len(r.Approvals) == 0 {
		w("No approvals were needed.\n")
	} else {
		w("| step | decision | by | from | when | reason |\n|---|---|---|---|---|---|\n")
		for _, a := range r.Approvals {
			w("| %s | %s | %s | %s | %s | %s |\n", cell(a.Step), cell(a.Decision), cell(a.By), orDash(a.SourceIP), ts(a.At), cell(a.Reason))
		}
	}

	w("\n## Timeline\n\n| when | who | what | step | reason |\n|---|---|---|---|---|\n")
	for _, t := range r.Timeline {
		w("| %s | %s | %s | %s | %s |\n", ts(t.At), cell(t.Actor), cell(t.What), orDash(t.StepID), cell(t.Reason))
	}

	w("\n## Evidence\n\n")
	if len(r.Evidence) == 0 {
		w("No evidence was collected.\n")
	} else {
		w("| name | sha256 | size | class | collected by | source | when |\n|---|---|---|---|---|---|---|\n")
		for _, e := range r.Evidence {
			w("| %s | %s | %d | %s | %s | %s | %s |\n", cell(e.Name), code(e.SHA256), e.Size, cell(e.Class), cell(e.CollectedBy), cell(e.Source), ts(e.CollectedAt))
		}
	}

	w("\n## Audit trail\n\n")
	verdict := "verified: every entry's hash chains to the previous one"
	if !r.LedgerVerified {
		verdict = "NOT verified: " + cell(r.LedgerProblem)
	}
	w("%d ledger entries, %s.", len(r.Ledger), verdict)
	if n := len(r.Ledger); n > 0 {
		w(" Chain head: seq %d, %s.", r.Ledger[n-1].Seq, code(r.Ledger[n-1].Hash))
	}
	w(" Check it any time with %s.\n", code("starter audit verify "+r.IncidentID))

	w("\n## Lessons learned\n\n_To be filled in by the incident lead within five working days._\n\n")
	w("- What went well:\n- What went badly:\n- Root cause:\n- Where we were lucky:\n- Actions (owner, due date):\n")
	return []byte(b.String())
}

func countAlerts(a []Alert) int {
	n := 0
	for _, x := range a {
		n += x.Count
	}
	return n
}

func sources(a []Alert) string {
	seen := map[string]bool{}
	var out []string
	for _, x := range a {
		if !seen[x.Source] {
			seen[x.Source] = true
			out = append(out, x.Source)
		}
	}
	if len(out) == 0 {
		return "no detector"
	}
	return strings.Join(out, ", ")
}

func countStatus(steps []Step, status string) int {
	n := 0
	for _, s := range steps {
		if s.Status == status {
			n++
		}
	}
	return n
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return cell(s)
}

// cell renders detector- or user-supplied text as inert Markdown text, in
// a table cell or a paragraph: every character Markdown or its GFM
// extensions give a meaning to (emphasis, code, links, autolinks of URLs,
// www. and e-mail addresses, raw HTML, entities, table cell separators) is
// backslash-escaped, and line breaks become spaces, so the value stays one
// cell of one row and nothing in it becomes a link, markup or HTML.
func cell(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i, r := range s {
		switch {
		case r == '\r' || r == '\n' || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case r < ' ' || r == 0x7f:
			b.WriteRune('\uFFFD') // other control characters: visible, inert
		case strings.ContainsRune(markdownSpecial, r),
			r == ':' && strings.HasPrefix(s[i+1:], "//"),             // scheme://, an autolink
			r == '.' && i >= 3 && strings.EqualFold(s[i-3:i], "www"): // www., an autolink
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Text is the escaping of [Markdown] for other writers of Markdown (the
// drill report): detector- or user-supplied text becomes inert text that
// stays on one line and in one table cell.
func Text(s string) string { return cell(s) }

// markdownSpecial are the ASCII punctuation characters cell always
// escapes ("@" stops e-mail autolinks); ":" and "." are escaped where they
// would make an autolink. The others mean nothing inside a line of text.
const markdownSpecial = "\\`*_{}[]()#+!|<>~&@"

// code renders a value the platform computed (a hash, a command) as a code
// span; a value with a backtick or a line break is rendered with cell.
func code(s string) string {
	if s == "" || strings.ContainsAny(s, "`\r\n|") {
		return cell(s)
	}
	return "`" + s + "`"
}
