package controls

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/controls"
	"github.com/iru-responder/responder/internal/accesslog"
	"github.com/iru-responder/responder/internal/ledger"
)

// MaxKeyLookback bounds how many days of daily chains the key-age check reads.
const MaxKeyLookback = 400

// keyRecord is the newest key-change record found for a key.
type keyRecord struct {
	Key      string
	Kind     string
	LastSeen time.Time `json:",omitzero"`
	Chain    string    `json:",omitempty"`
	Seq      int64     `json:",omitempty"`
	Action   string    `json:",omitempty"`
}

// lastKeyChanges scans the daily chains from today backwards, days at most,
// for key-change records of the wanted keys, and stops once each was found.
func (a *Activities) lastKeyChanges(ctx context.Context, want []string, days int) (map[string]keyRecord, error) {
	found := map[string]keyRecord{}
	today := a.now().Truncate(24 * time.Hour)
	for d := 0; d <= days && len(found) < len(want); d++ {
		chain := accesslog.Chain(today.AddDate(0, 0, -d))
		err := a.Ledger.Store().Entries(ctx, chain, func(e ledger.Entry) error {
			if e.Action != accesslog.ActionKeyChange || e.Record == nil {
				return nil
			}
			var rec accesslog.Record
			if err := json.Unmarshal(e.Record, &rec); err != nil {
				return nil // a record this version cannot read names no key
			}
			for _, k := range rec.Keys {
				if !slices.Contains(want, k) {
					continue
				}
				if cur, ok := found[k]; !ok || e.Time.After(cur.LastSeen) {
					found[k] = keyRecord{Key: k, LastSeen: e.Time.UTC(), Chain: e.Incident, Seq: e.Seq, Action: rec.Path}
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("read %s: %w", chain, err)
		}
	}
	return found, nil
}

func checkKeyAge(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	if a.ManagedKeys == nil {
		return nil, verdict{}, fmt.Errorf("managed keys: %w", errNotConfigured)
	}
	if a.Ledger == nil {
		return nil, verdict{}, fmt.Errorf("ledger: %w", errNotConfigured)
	}
	all, err := a.ManagedKeys(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	var keys []ManagedKey
	var ids []string
	for _, k := range all {
		if slices.Contains(c.Params.KeyKinds, k.Kind) && !slices.Contains(ids, k.ID) {
			keys = append(keys, k)
			ids = append(ids, k.ID)
		}
	}
	// Look back twice the maximum age: a record older than the maximum is
	// a failure (rotation overdue), no record at all is unknown.
	days := min(int(2*c.Params.MaxAge/(24*time.Hour))+1, MaxKeyLookback)
	found, err := a.lastKeyChanges(ctx, ids, days)
	if err != nil {
		return nil, verdict{}, err
	}
	now := a.now()
	var v verdict
	var obs []keyRecord
	for _, k := range keys {
		v.targets++
		rec, ok := found[k.ID]
		rec.Key, rec.Kind = k.ID, k.Kind
		obs = append(obs, rec)
		expected := fmt.Sprintf("a key-change record younger than %s", humanDays(c.Params.MaxAge))
		switch age := now.Sub(rec.LastSeen); {
		case !ok:
			v.unsure(activities.ControlFinding{Target: "key/" + k.ID, Setting: "last key-change record",
				Observed: fmt.Sprintf("no key-change record of %s in the ledger's daily chains of the last %d days", k.ID, days), Expected: expected})
		case age > c.Params.MaxAge:
			v.fail(activities.ControlFinding{Target: "key/" + k.ID, Setting: "last key-change record",
				Observed: fmt.Sprintf("last rotated %s (%s ago; ledger %s seq %d, %s)", rec.LastSeen.Format(time.RFC3339), humanDays(age), rec.Chain, rec.Seq, rec.Action),
				Expected: expected})
		}
	}
	return obs, v, nil
}

func humanDays(d time.Duration) string {
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

func checkKEK(ctx context.Context, a *Activities, _ controls.Control) (any, verdict, error) {
	if a.KEKs == nil {
		return nil, verdict{}, fmt.Errorf("hsm: %w", errNotConfigured)
	}
	keks, err := a.KEKs.KEKProtection(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	for _, k := range keks {
		v.targets++
		if k.Extractable {
			v.fail(activities.ControlFinding{Target: "hsm/kek/" + k.ID, Setting: "CKA_EXTRACTABLE", Observed: "true", Expected: "false"})
		}
		if !k.Sensitive {
			v.fail(activities.ControlFinding{Target: "hsm/kek/" + k.ID, Setting: "CKA_SENSITIVE", Observed: "false", Expected: "true"})
		}
	}
	if len(keks) == 0 {
		v.unsure(activities.ControlFinding{Target: "hsm", Setting: "key-encryption keys", Observed: "the token holds no KEK", Expected: "a KEK held non-extractable"})
	}
	return keks, v, nil
}

// tlsProbe is what the TLS check saw.
type tlsProbe struct {
	Addr          string
	TLS12Accepted bool
	TLS12Error    string `json:",omitempty"`
	TLS13Accepted bool
	TLS13Error    string `json:",omitempty"`
}

func checkTLS13(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	addr := c.Params.Addr
	if addr == "" {
		addr = a.APIAddr
	}
	if addr == "" {
		return nil, verdict{}, fmt.Errorf("the API server's TLS address (IRU_CONTROLS_API_TLS_ADDR): %w", errNotConfigured)
	}
	p := tlsProbe{Addr: addr}
	// Only the protocol versions are checked here, not the server's
	// identity: the handshake is abandoned once it completes.
	try := func(minV, maxV uint16) (bool, string) {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
			Config: &tls.Config{MinVersion: minV, MaxVersion: maxV, InsecureSkipVerify: true}} //nolint:gosec // protocol probe, nothing is sent
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, err.Error()
		}
		_ = conn.Close()
		return true, ""
	}
	p.TLS12Accepted, p.TLS12Error = try(tls.VersionTLS12, tls.VersionTLS12)
	p.TLS13Accepted, p.TLS13Error = try(tls.VersionTLS13, tls.VersionTLS13)
	v := verdict{targets: 1}
	target := "api/" + addr
	switch {
	case p.TLS12Accepted:
		v.fail(activities.ControlFinding{Target: target, Setting: "TLS protocol versions", Observed: "a TLS 1.2 handshake was accepted", Expected: "TLS 1.3 only (TLS 1.2 refused)"})
	case !p.TLS13Accepted && isConnRefused(p.TLS13Error):
		v.unsure(activities.ControlFinding{Target: target, Setting: "TLS listener", Observed: "not reachable: " + p.TLS13Error, Expected: "TLS 1.3 offered"})
	case !p.TLS13Accepted:
		v.fail(activities.ControlFinding{Target: target, Setting: "TLS protocol versions", Observed: "TLS 1.3 handshake failed: " + p.TLS13Error, Expected: "TLS 1.3 offered"})
	}
	return p, v, nil
}

func isConnRefused(msg string) bool {
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "no such host")
}

// ledgerDays is how many ended days of daily chains the ledger check verifies.
const ledgerDays = 7

func checkLedger(ctx context.Context, a *Activities, _ controls.Control) (any, verdict, error) {
	if a.Ledger == nil || a.Verifier == nil {
		return nil, verdict{}, fmt.Errorf("ledger and its verifier: %w", errNotConfigured)
	}
	var v verdict
	var reports []ledger.Report
	today := a.now().Truncate(24 * time.Hour)
	for d := 0; d <= ledgerDays; d++ {
		chain := accesslog.Chain(today.AddDate(0, 0, -d))
		rep, err := a.Ledger.Verify(ctx, chain, a.Verifier)
		if err != nil {
			return nil, verdict{}, err
		}
		v.targets++
		reports = append(reports, rep)
		if rep.Problem != nil {
			v.fail(activities.ControlFinding{Target: "ledger/" + chain, Setting: fmt.Sprintf("chain %s entry seq %d", chain, rep.Problem.Seq),
				Observed: rep.Problem.String(), Expected: "the chain verifies (hashes, sequence, records, checkpoint signatures)"})
			continue
		}
		if d == 1 && rep.Entries > 0 && rep.CheckpointSeq < rep.HeadSeq {
			v.fail(activities.ControlFinding{Target: "ledger/" + chain, Setting: "signed checkpoint of " + chain,
				Observed: fmt.Sprintf("a valid checkpoint covers seq %d of %d", rep.CheckpointSeq, rep.HeadSeq),
				Expected: "yesterday's chain signed up to its head (daily signing at 00:10 UTC)"})
		}
	}
	return reports, v, nil
}

func checkRetention(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	if a.Runs == nil {
		return nil, verdict{}, fmt.Errorf("temporal client: %w", errNotConfigured)
	}
	at, ok, err := a.Runs.LastSweep(ctx)
	if err != nil {
		return nil, verdict{}, err
	}
	v := verdict{targets: 1}
	exp := "a completed evidence retention sweep in the last " + c.Params.MaxAge.String()
	switch {
	case !ok:
		v.unsure(activities.ControlFinding{Target: "evidence/retention-sweep", Setting: "last completed sweep", Observed: "no completed sweep is known to Temporal", Expected: exp})
	case a.now().Sub(at) > c.Params.MaxAge:
		v.fail(activities.ControlFinding{Target: "evidence/retention-sweep", Setting: "last completed sweep",
			Observed: fmt.Sprintf("%s (%s ago)", at.UTC().Format(time.RFC3339), a.now().Sub(at).Round(time.Minute)), Expected: exp})
	}
	return map[string]any{"last_sweep": at, "known": ok}, v, nil
}

func checkDrills(ctx context.Context, a *Activities, c controls.Control) (any, verdict, error) {
	if a.Runs == nil {
		return nil, verdict{}, fmt.Errorf("temporal client: %w", errNotConfigured)
	}
	if len(a.Playbooks) == 0 {
		return nil, verdict{}, fmt.Errorf("playbook list: %w", errNotConfigured)
	}
	runs, err := a.Runs.Drills(ctx, a.now().Add(-c.Params.MaxAge))
	if err != nil {
		return nil, verdict{}, err
	}
	var v verdict
	for _, pb := range a.Playbooks {
		v.targets++
		var mine []DrillRun
		for _, r := range runs {
			if r.Playbook == pb {
				mine = append(mine, r)
			}
		}
		exp := "a drill of the playbook in the last " + humanDays(c.Params.MaxAge) + " with every objective met"
		switch {
		case len(mine) == 0:
			v.fail(activities.ControlFinding{Target: "playbook/" + pb, Setting: "last drill", Observed: "no drill ended in the period", Expected: exp})
		case !slices.ContainsFunc(mine, func(r DrillRun) bool { return r.Passed }):
			last := mine[0]
			v.fail(activities.ControlFinding{Target: "playbook/" + pb, Setting: "drill " + last.Drill + " objectives",
				Observed: fmt.Sprintf("%d drill(s), none passed; last %s: %s", len(mine), last.EndedAt.UTC().Format(time.RFC3339), strings.Join(last.Failures, "; ")),
				Expected: exp})
		}
	}
	return runs, v, nil
}
