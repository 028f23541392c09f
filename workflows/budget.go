package workflows

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"unicode/utf8"

	"go.temporal.io/sdk/workflow"
)

// Byte budgets of an incident's state. The state is the status query's
// result and the continue-as-new carry, so it must stay far below the
// server's 2 MB blob limit whatever the detectors send: the budget test
// keeps the status, the carry and the largest signal under 256 KB with
// every cap filled. Counts alone (maxTimeline, maxAlertRecords) do not
// bound bytes. Everything cut here is whole elsewhere: alerts in the
// signal payloads of the history and the intake's raw reference, events in
// the ledger.
const (
	// maxStateLabelsBytes bounds the first alert's labels kept in state
	// (what templates see as .Labels).
	maxStateLabelsBytes = 16 << 10
	// maxStateAlertsBytes bounds the distinct-alert records.
	maxStateAlertsBytes = 48 << 10
	// maxTimelineBytes bounds the timeline.
	maxTimelineBytes = 64 << 10
	// maxStateTextBytes bounds one text kept in state: a timeline entry's
	// what and reason, an alert record's rule and summary.
	maxStateTextBytes = 512
	// maxStateFingerprintBytes bounds a fingerprint kept in state; a
	// longer one is replaced by its hash (it stays unique).
	maxStateFingerprintBytes = 128
	// recordOverhead is what a record's field names, times and numbers
	// add to its strings, encoded (an upper bound).
	recordOverhead = 320
)

// clipText cuts s to at most n bytes at a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// stateFingerprint bounds a fingerprint: a long one becomes its hash.
func stateFingerprint(fp string) string {
	if len(fp) <= maxStateFingerprintBytes {
		return fp
	}
	s := sha256.Sum256([]byte(fp))
	return "sha256:" + hex.EncodeToString(s[:])
}

// stateLabels copies the labels that fit maxStateLabelsBytes, smallest
// first (so the short identifiers templates use, such as username and
// realm, are kept before a bulky label), and counts those left out.
func stateLabels(l map[string]string) (map[string]string, int) {
	keys := workflow.DeterministicKeys(l)
	size := func(k string) int { return len(k) + len(l[k]) + 6 }
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(size(a), size(b)) })
	out := make(map[string]string, len(keys))
	used, dropped := 2, 0
	for _, k := range keys {
		if used+size(k) > maxStateLabelsBytes {
			dropped++
			continue
		}
		out[k] = l[k]
		used += size(k)
	}
	return out, dropped
}

// alertRecordBytes bounds a record's encoded size.
func alertRecordBytes(r AlertRecord) int {
	return recordOverhead + 2*(len(r.Fingerprint)+len(r.ID)+len(r.Source)+len(r.Rule)+len(r.Severity)+len(r.Summary))
}

// alertFits reports whether one more record fits the alerts' budget.
func (w *incident) alertFits(r AlertRecord) bool {
	used := 0
	for _, a := range w.st.Alerts {
		used += alertRecordBytes(a)
	}
	return used+alertRecordBytes(r) <= maxStateAlertsBytes
}

// stateAlertRecord is the record kept in state for alert a.
func stateAlertRecord(a Alert, fp string) AlertRecord {
	return AlertRecord{Fingerprint: fp, ID: clipText(a.ID, maxStateFingerprintBytes), Source: clipText(a.Source, 64),
		Rule: clipText(a.Rule, maxStateTextBytes), Severity: clipText(a.Severity, 16), Summary: clipText(a.Summary, maxStateTextBytes),
		ObservedAt: a.ObservedAt, ReceivedAt: a.ReceivedAt}
}

// timelineEntryBytes bounds an entry's encoded size.
func timelineEntryBytes(e TimelineEntry) int {
	return recordOverhead/2 + 2*(len(e.Actor)+len(e.SourceIP)+len(e.What)+len(e.StepID)+len(e.Reason))
}

// clipEntry bounds an entry's texts.
func clipEntry(e TimelineEntry) TimelineEntry {
	e.Actor, e.SourceIP, e.StepID = clipText(e.Actor, 256), clipText(e.SourceIP, 64), clipText(e.StepID, 256)
	e.What, e.Reason = clipText(e.What, maxStateTextBytes), clipText(e.Reason, maxStateTextBytes)
	return e
}

// timelineOver returns how many of the oldest entries to drop so the
// timeline fits maxTimelineBytes.
func timelineOver(tl []TimelineEntry) int {
	used := 0
	for _, e := range tl {
		used += timelineEntryBytes(e)
	}
	n := 0
	for n < len(tl)-1 && used > maxTimelineBytes {
		used -= timelineEntryBytes(tl[n])
		n++
	}
	return n
}
