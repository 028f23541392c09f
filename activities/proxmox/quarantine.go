package proxmox

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// QuarantineTag is the tag pve.isolate adds to an isolated container.
const QuarantineTag = "quarantine"

// recordPrefix starts the description line holding the quarantine record.
const recordPrefix = "iru-quarantine:v1:"

// maxDescription is PVE's limit for a container description.
const maxDescription = 8192

// Isolation methods.
const (
	methodFirewall = "firewall"
	methodLinkDown = "link_down"
)

// priorState is the exact network state of a container before isolation.
type priorState struct {
	// Options are the CT firewall options (without digest).
	Options map[string]string `json:"options"`
	// Rules are the CT firewall rules in order (without pos/digest/ipversion),
	// in legacy records only: an isolation through a security group does
	// not touch the container's rules.
	Rules []map[string]string `json:"rules,omitempty"`
	// Nets are the netN property strings.
	Nets map[string]string `json:"nets"`
	// Tags is the tag list as PVE returned it ("" when unset).
	Tags string `json:"tags,omitempty"`
	// Description is the description as PVE returned it ("" when unset).
	Description string `json:"description,omitempty"`
}

// recordGroupModel is the version of records of isolations through a
// security group (group.go). Records without a version were written by
// releases that isolated by disabling the container's own rules and adding
// allow rules to them (priorState.Rules holds those rules); they are still
// continued and lifted as they were made.
const recordGroupModel = 2

// quarantineRecord is kept (compressed) in the description of an isolated
// container: it is written in the same config update as the first change,
// so it always exists while anything of the isolation does.
type quarantineRecord struct {
	// V is the isolation model: [recordGroupModel], or 0 (legacy).
	V int `json:"v,omitempty"`
	// Group is the security group of a firewall isolation (V 2).
	Group       string     `json:"group,omitempty"`
	Incident    string     `json:"incident"`
	Method      string     `json:"method"`
	Allow       []string   `json:"allow,omitempty"`
	EvidenceRef string     `json:"evidence_ref,omitempty"`
	Prior       priorState `json:"prior"`
}

func marker(incident string) string { return "iru:" + incident }

func encodeRecord(r *quarantineRecord) (string, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode quarantine record: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		return "", fmt.Errorf("compress quarantine record: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("compress quarantine record: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf.Bytes()), nil
}

func decodeRecord(enc string) (*quarantineRecord, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return nil, fmt.Errorf("decode quarantine record: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decompress quarantine record: %w", err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("decompress quarantine record: %w", err)
	}
	var r quarantineRecord
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("decode quarantine record: %w", err)
	}
	return &r, nil
}

// recordDescription is the description of an isolated container: a line
// for people, the record and its signature, and the original text when it
// still fits.
func recordDescription(r *quarantineRecord, enc, sigLine string) (string, error) {
	d := fmt.Sprintf("IRU QUARANTINE: network isolated (%s) by IRU Responder for incident %s. Lift it with pve.unisolate; keep the next lines.\n%s%s\n%s%s\n",
		r.Method, r.Incident, recordPrefix, enc, recordSigPrefix, sigLine)
	if orig := strings.TrimRight(r.Prior.Description, "\n"); orig != "" && len(d)+1+len(orig) <= maxDescription {
		d += "\n" + orig + "\n"
	}
	if len(d) > maxDescription {
		return "", fmt.Errorf("quarantine record of %d bytes does not fit the %d byte description", len(d), maxDescription)
	}
	return d, nil
}

// legacy reports whether r was written by a release that isolated by
// disabling the container's own rules (no security group).
func (r *quarantineRecord) legacy() bool { return r.V < recordGroupModel }
