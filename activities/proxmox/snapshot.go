package proxmox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/iru-responder/responder/activities"
)

var reConfigID = regexp.MustCompile(`^[a-z][a-z0-9_-]+$`)

// maxSnapName is PVE's pve-configid length limit.
const maxSnapName = 40

// SnapshotName turns a wanted snapshot name (or, when empty, the incident
// id) into a valid PVE snapshot name: lower case, [a-z0-9_-], starting with
// a letter, at most 40 characters. Names that must be shortened end in a
// hash of the original, so different incidents keep different names.
func SnapshotName(name, incident string) string {
	if name == "" {
		name = "ir-" + incident
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := b.String()
	if out == "" || out[0] < 'a' || out[0] > 'z' || out == "current" || out == "vzdump" {
		out = "ir-" + out
	}
	if len(out) > maxSnapName {
		sum := sha256.Sum256([]byte(name))
		out = strings.TrimRight(out[:maxSnapName-9], "-_") + "-" + hex.EncodeToString(sum[:4])
	}
	if len(out) < 2 {
		out += "-x"
	}
	return out
}

type snapInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// findSnapshot reports whether the snapshot exists and whether its
// description marks it as this incident's.
func (x *call) findSnapshot(ctx context.Context, name, incident string) (found, own bool, err error) {
	var list []snapInfo
	if err := x.get(ctx, x.ct.path("/snapshot"), &list); err != nil {
		return false, false, err
	}
	for _, s := range list {
		if s.Name == name && s.Name != "current" {
			return true, isOwnDescription(s.Description, incident), nil
		}
	}
	return false, false, nil
}

func isOwnDescription(desc, incident string) bool {
	m := marker(incident)
	d := strings.TrimSpace(desc)
	return d == m || strings.HasPrefix(d, m+" ")
}

// Snapshot implements [activities.PVESnapshot]: a snapshot named after the
// incident whose description starts with iru:<incident>. A retry finds its
// own snapshot (or waits for the snapshot task an earlier attempt started);
// a snapshot of that name made by anyone else is a Conflict. LXC snapshots
// have no memory state: include_ram is reported, not honoured.
func (a *Activities) Snapshot(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVESnapshotParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.begin(ctx, in, activities.PVESnapshot, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if in.IncidentID == "" {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, x.what()+": no incident id")
	}
	includeRAM := p.IncludeRAM
	name := SnapshotName(p.Name, in.IncidentID)
	if !reConfigID.MatchString(name) || len(name) > maxSnapName {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, fmt.Sprintf("%s: snapshot name %q is not a valid pve-configid", x.what(), name))
	}
	desc := fmt.Sprintf("%s evidence snapshot, incident %s, step %s", marker(in.IncidentID), in.IncidentID, in.StepID)
	note := ""
	if includeRAM {
		note = " (memory state not included: LXC snapshots have none)"
	}
	conflict := func() error {
		return final(activities.ErrTypeConflict, fmt.Sprintf("%s: a snapshot named %q exists that this incident did not take", x.what(), name))
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Snapshot"); err != nil {
			return activities.ActionResult{}, err
		}
		found, own, err := x.findSnapshot(ctx, name, in.IncidentID)
		if err != nil {
			return activities.ActionResult{}, err
		}
		plan := []string{fmt.Sprintf("create snapshot %q of %s with description %q%s", name, x.ct, desc, note)}
		switch {
		case found && own:
			plan = []string{fmt.Sprintf("nothing to do: snapshot %q of %s exists", name, x.ct)}
		case found:
			return activities.ActionResult{}, conflict()
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"snapshot": name}, Summary: "dry run: " + plan[0]}, nil
	}
	err = x.withLockWait(ctx, func() error {
		found, own, err := x.findSnapshot(ctx, name, in.IncidentID)
		if err != nil || own {
			return err
		}
		if found {
			return conflict()
		}
		if upid, err := x.activeTask(ctx, "vzsnapshot"); err != nil {
			return err
		} else if upid != "" {
			// A snapshot task of an earlier attempt (or of someone else) is
			// running: wait for it, then look again. Its failure is not ours.
			_ = x.waitTask(ctx, upid)
			if found, own, err := x.findSnapshot(ctx, name, in.IncidentID); err != nil || own {
				return err
			} else if found {
				return conflict()
			}
		}
		_, err = x.runTask(ctx, http.MethodPost, x.ct.path("/snapshot"), map[string]any{"snapname": name, "description": desc})
		if err != nil {
			// "snapshot name already used": a concurrent attempt may have won.
			if found, own, ferr := x.findSnapshot(ctx, name, in.IncidentID); ferr == nil && found {
				if own {
					return nil
				}
				return conflict()
			}
		}
		return err
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	found, own, err := x.findSnapshot(ctx, name, in.IncidentID)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if !found || !own {
		return activities.ActionResult{}, verifyError(fmt.Sprintf("%s: snapshot %q not found after its task succeeded", x.what(), name))
	}
	return activities.ActionResult{Outputs: map[string]string{"snapshot": name},
		Summary: fmt.Sprintf("snapshot %q of %s%s", name, x.ct, note)}, nil
}
