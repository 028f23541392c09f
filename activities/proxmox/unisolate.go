package proxmox

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// Unisolate implements [activities.PVEUnisolate]: it restores exactly the
// state recorded by pve.isolate of the same incident (firewall options
// including enable=0, netN strings, tags and description), deletes every
// firewall rule commented iru:<incident> (the security group rule; for a
// legacy record, the allow rules, and it re-enables the container's own
// rules as recorded, in their order), removes the record last, and
// verifies the read-back. The security group stays: other isolations with
// the same allow list share it. A container without this incident's
// record has nothing to lift: success.
func (a *Activities) Unisolate(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEUnisolateParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.begin(ctx, in, activities.PVEUnisolate, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if in.IncidentID == "" {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, x.what()+": no incident id")
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Audit", "VM.Config.Network", "VM.Config.Options"); err != nil {
			return activities.ActionResult{}, err
		}
	}
	m := marker(in.IncidentID)
	var rec *quarantineRecord
	var plan []string
	note := ""
	err = x.withLockWait(ctx, func() error {
		st, err := x.readState(ctx)
		if err != nil {
			return err
		}
		r, err := x.trustedRecord(ctx, st)
		if err != nil {
			return err
		}
		if r == nil || r.Incident != in.IncidentID {
			rec = nil
			if st.hasMarkerRules(m) {
				return final(activities.ErrTypeConflict, fmt.Sprintf(
					"%s: firewall rules commented %s exist but the quarantine record is gone from the description; restore manually from the prior state %s",
					x.what(), m, orNone(in.Undo["prior_ref"])))
			}
			note = fmt.Sprintf("nothing to lift: %s carries no isolation of incident %s", x.ct, in.IncidentID)
			if r != nil {
				note += " (it is quarantined by incident " + r.Incident + ")"
			}
			return nil
		}
		rec = r
		changes, err := x.restoreChanges(st, r)
		if err != nil {
			return err
		}
		if in.DryRun {
			plan = describe(changes)
			return nil
		}
		return apply(ctx, changes)
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	if rec == nil {
		res := activities.ActionResult{Outputs: map[string]string{"method": p.Method}, Summary: note}
		if in.DryRun {
			res.Plan = []string{note}
		}
		return res, nil
	}
	if in.DryRun {
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"method": rec.Method},
			Summary: fmt.Sprintf("dry run: would restore the network state of %s recorded in %s", x.ct, rec.EvidenceRef)}, nil
	}
	st, err := x.readState(ctx)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if diffs := priorDiff(st, rec); len(diffs) > 0 {
		return activities.ActionResult{}, verifyError(fmt.Sprintf("%s: read-back differs from the recorded prior state: %s", x.what(), strings.Join(diffs, "; ")))
	}
	return activities.ActionResult{
		Outputs:      map[string]string{"method": rec.Method},
		EvidenceRefs: []string{rec.EvidenceRef},
		Summary:      fmt.Sprintf("lifted the isolation (%s) of %s; restored the state recorded in %s", rec.Method, x.ct, rec.EvidenceRef),
	}, nil
}

// restoreChanges lists what is left to do to bring st back to rec.Prior:
// firewall options, then rules (ours deleted from the highest position,
// for a legacy record the container's own re-enabled), then the config
// with the record last.
func (x *call) restoreChanges(st *ctState, rec *quarantineRecord) ([]change, error) {
	var changes []change
	prior := rec.Prior
	m := marker(rec.Incident)
	if body := optionsBody(st.options, prior.Options); len(body) > 0 {
		changes = append(changes, change{
			desc: fmt.Sprintf("restore firewall options %s", fmtOptions(prior.Options)),
			do:   func(ctx context.Context) error { return x.put(ctx, x.ct.path("/firewall/options"), body, nil) },
		})
	}
	var own []map[string]string
	for pos := len(st.rules) - 1; pos >= 0; pos-- {
		r := st.rules[pos]
		if r["comment"] == m {
			p := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
			changes = append(changes, change{
				desc: fmt.Sprintf("delete firewall rule %d (%s)", pos, ruleText(r)),
				do:   func(ctx context.Context) error { return x.del(ctx, p, nil) },
			})
			continue
		}
		own = append([]map[string]string{r}, own...)
	}
	// An isolation through a security group left the container's own
	// rules as they were (whatever happened to them since is not ours to
	// undo); a legacy one disabled them: they are enabled again as recorded.
	if !rec.legacy() {
		own = nil
	} else if !sameRulesButEnable(own, prior.Rules) {
		return nil, final(activities.ErrTypeConflict, fmt.Sprintf(
			"%s: the container's firewall rules changed during the isolation (%d rules now, %d recorded); restore them manually from %s",
			x.what(), len(own), len(prior.Rules), orNone(rec.EvidenceRef)))
	}
	for pos, r := range own {
		if want := cmp.Or(prior.Rules[pos]["enable"], "0"); cmp.Or(r["enable"], "0") != want {
			p := x.ct.path("/firewall/rules/" + strconv.Itoa(pos))
			n, _ := strconv.Atoi(want)
			changes = append(changes, change{
				desc: fmt.Sprintf("set firewall rule %d (%s) enable=%s", pos, ruleText(r), want),
				do:   func(ctx context.Context) error { return x.put(ctx, p, map[string]any{"enable": n}, nil) },
			})
		}
	}
	body := map[string]any{}
	var del, what []string
	cur := st.nets()
	for _, k := range slices.Sorted(maps.Keys(prior.Nets)) {
		if c, ok := cur[k]; !ok || !sameProps(c, prior.Nets[k]) {
			body[k] = prior.Nets[k]
			what = append(what, "restore "+k)
		}
	}
	if normTags(st.tags()) != normTags(prior.Tags) {
		if prior.Tags == "" {
			del = append(del, "tags")
		} else {
			body["tags"] = prior.Tags
		}
		what = append(what, fmt.Sprintf("restore tags %q", prior.Tags))
	}
	if strings.TrimRight(st.description(), "\n") != strings.TrimRight(prior.Description, "\n") {
		if strings.TrimRight(prior.Description, "\n") == "" {
			del = append(del, "description")
		} else {
			body["description"] = prior.Description
		}
		what = append(what, "restore the description (removing the quarantine record)")
	}
	if len(del) > 0 {
		body["delete"] = strings.Join(del, ",")
	}
	if len(body) > 0 {
		body["digest"] = st.digest()
		changes = append(changes, change{
			desc: fmt.Sprintf("update the config of %s: %s", x.ct, strings.Join(what, ", ")),
			do:   func(ctx context.Context) error { return x.put(ctx, x.ct.path("/config"), body, nil) },
		})
	}
	return changes, nil
}

// optionsBody is the PUT body turning firewall options cur into want:
// changed keys set (numbers as numbers: go-proxmox's typed struct would
// drop enable=0), extra keys deleted.
func optionsBody(cur, want map[string]string) map[string]any {
	body := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if cur[k] != want[k] {
			if n, err := strconv.Atoi(want[k]); err == nil && isDigits(want[k]) {
				body[k] = n
			} else {
				body[k] = want[k]
			}
		}
	}
	var del []string
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		if _, ok := want[k]; !ok {
			del = append(del, k)
		}
	}
	if len(del) > 0 {
		body["delete"] = strings.Join(del, ",")
	}
	return body
}

func fmtOptions(o map[string]string) string {
	if len(o) == 0 {
		return "(none: PVE defaults)"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o)) {
		parts = append(parts, k+"="+o[k])
	}
	return strings.Join(parts, " ")
}

func sameRulesButEnable(a, b []map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := maps.Clone(a[i]), maps.Clone(b[i])
		delete(x, "enable")
		delete(y, "enable")
		if !maps.Equal(x, y) {
			return false
		}
	}
	return true
}

func normTags(t string) string {
	parts := splitTags(strings.ToLower(t))
	sort.Strings(parts)
	return strings.Join(slices.Compact(parts), ";")
}

// priorDiff lists how st differs from the prior state recorded in rec.
func priorDiff(st *ctState, rec *quarantineRecord) []string {
	var d []string
	prior := rec.Prior
	if !maps.Equal(st.options, prior.Options) {
		d = append(d, fmt.Sprintf("firewall options %s, recorded %s", fmtOptions(st.options), fmtOptions(prior.Options)))
	}
	if !rec.legacy() {
		if st.hasMarkerRules(marker(rec.Incident)) {
			d = append(d, "firewall rules commented "+marker(rec.Incident)+" remain")
		}
	} else if len(st.rules) != len(prior.Rules) {
		d = append(d, fmt.Sprintf("%d firewall rules, recorded %d", len(st.rules), len(prior.Rules)))
	} else {
		for i := range st.rules {
			if !maps.Equal(st.rules[i], prior.Rules[i]) {
				d = append(d, fmt.Sprintf("firewall rule %d is %s, recorded %s", i, ruleText(st.rules[i]), ruleText(prior.Rules[i])))
			}
		}
	}
	cur := st.nets()
	for _, k := range slices.Sorted(maps.Keys(prior.Nets)) {
		if !sameProps(cur[k], prior.Nets[k]) {
			d = append(d, fmt.Sprintf("%s is %q, recorded %q", k, cur[k], prior.Nets[k]))
		}
	}
	if normTags(st.tags()) != normTags(prior.Tags) {
		d = append(d, fmt.Sprintf("tags %q, recorded %q", st.tags(), prior.Tags))
	}
	if strings.TrimRight(st.description(), "\n") != strings.TrimRight(prior.Description, "\n") {
		d = append(d, "description differs from the recorded one")
	}
	return d
}

// verifyError is a retryable read-back mismatch.
func verifyError(msg string) error {
	return temporal.NewApplicationError(msg, ErrTypeVerify)
}
