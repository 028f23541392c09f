// Package forward delivers spooled alerts to Temporal: it drains the
// intake's spool, groups pending alerts by correlation key (one call
// carrying many alerts per key: a SignalWithStart, or a Signal once the
// key's incident runs), starts or joins the key's incident workflow, acknowledges delivered items in the spool,
// and on failure backs off per key and retries, never delivering an item
// before an earlier one of the same key.
package forward

import (
	"encoding/json"
	"fmt"

	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/spool"
	"github.com/iru-responder/responder/workflows"
)

// Record is one spooled alert with what the intake decided about it.
type Record struct {
	// Key is the correlation key; the workflow id is
	// workflows.IncidentWorkflowID(Key).
	Key string `json:"key"`
	// Playbook and RuleName are the routing decision.
	Playbook string `json:"playbook"`
	RuleName string `json:"rule_name,omitempty"`
	// Mapped is false when the inventory did not know the asset
	// (Alert.Asset is then the raw name; the alert carries label
	// "iru.unmapped"="true").
	Mapped bool `json:"mapped"`
	// Resolved alerts update a running incident but never open one.
	Resolved bool `json:"resolved,omitempty"`
	// OpenedBy is the authenticated detector identity.
	OpenedBy string `json:"opened_by"`
	// Alert is what the incident receives.
	Alert workflows.Alert `json:"alert"`
}

// Marshal encodes r for the spool, as JSON without HTML escaping (a label
// full of '<' must not grow six-fold; see parse.NewEncoder).
func (r *Record) Marshal() ([]byte, error) {
	b, err := parse.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("forward: encode record: %w", err)
	}
	return b, nil
}

// itemRecord returns the item's record: the intake's own
// (spool.Item.Decoded) for an item it appended in this process, else the
// item's Data decoded.
func itemRecord(it spool.Item) (Record, error) {
	if r, ok := it.Decoded.(Record); ok {
		return r, nil
	}
	return UnmarshalRecord(it.Data)
}

// UnmarshalRecord decodes a spooled record.
func UnmarshalRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("forward: decode record: %w", err)
	}
	return r, nil
}
