package proxmox

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	goprox "github.com/luthermonson/go-proxmox"

	"github.com/iru-responder/responder/activities"
)

// forensicNotesPrefix starts the notes of the backups pve.backup takes
// during an incident; pve.resolve_asset never offers them as last_backup and
// pve.restore refuses them (they are copies of the compromised container).
const forensicNotesPrefix = "iru-forensic:"

// status reads the container's current status ("running" or "stopped").
func (x *call) status(ctx context.Context) (string, error) {
	var st goprox.Container
	if err := x.get(ctx, x.ct.path("/status/current"), &st); err != nil {
		return "", err
	}
	return st.Status, nil
}

// powerOp describes stop, shutdown and start.
type powerOp struct {
	action   string
	cmd      string // status/<cmd>
	taskType string
	want     string // status after the task
	body     map[string]any
	timeout  time.Duration // extra time the task may take (shutdown)
	asset    string        // parameter asset
	reason   string        // parameter reason
}

// power runs a power operation idempotently: a container already in the
// wanted status is a success, a task an earlier attempt started is waited
// for, and the final status is read back.
func (a *Activities) power(ctx context.Context, in activities.ActionInput, op powerOp) (activities.ActionResult, error) {
	x, err := a.begin(ctx, in, op.action, op.asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	cur, err := x.status(ctx)
	if err != nil {
		return activities.ActionResult{}, err
	}
	prior := cur
	if e := earlier(ctx); e.PriorStatus != "" {
		prior = e.PriorStatus // what the first attempt saw
	}
	x.prog.PriorStatus = prior
	x.beat(ctx)
	res := activities.ActionResult{Outputs: map[string]string{"status": op.want}}
	if op.want == "stopped" {
		res.Undo = map[string]string{"prior_status": prior, "node": x.ct.Node, "vmid": strconv.Itoa(x.ct.VMID)}
	}
	if op.action == activities.PVEStart && in.Undo["prior_status"] == "stopped" {
		res.Summary = fmt.Sprintf("left %s %s: it was stopped before the step being compensated", x.ct, cur)
		res.Outputs["status"] = cur
		if in.DryRun {
			res.Plan = []string{res.Summary}
		}
		return res, nil
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.PowerMgmt"); err != nil {
			return activities.ActionResult{}, err
		}
		res.Plan = []string{fmt.Sprintf("nothing to do: %s is %s", x.ct, cur)}
		if cur != op.want {
			res.Plan = []string{fmt.Sprintf("%s %s (now %s)", op.cmd, x.ct, cur)}
		}
		res.Summary = "dry run: " + res.Plan[0]
		return res, nil
	}
	err = x.withLockWait(ctx, func() error {
		if upid, err := x.activeTask(ctx, op.taskType); err != nil {
			return err
		} else if upid != "" {
			_ = x.waitTask(ctx, upid) // an earlier attempt's task: its outcome is read below
		}
		cur, err := x.status(ctx)
		if err != nil || cur == op.want {
			return err
		}
		_, err = x.runTask(ctx, http.MethodPost, x.ct.path("/status/"+op.cmd), op.body)
		if err != nil {
			// "CT 100 not running" / "already running": someone got there first.
			if now, serr := x.status(ctx); serr == nil && now == op.want {
				return nil
			}
		}
		return err
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	got, err := x.status(ctx)
	if err != nil {
		return activities.ActionResult{}, err
	}
	if got != op.want {
		return activities.ActionResult{}, verifyError(fmt.Sprintf("%s: status is %s after %s, want %s", x.what(), got, op.cmd, op.want))
	}
	if prior == op.want {
		res.Summary = fmt.Sprintf("%s was already %s", x.ct, op.want)
	} else {
		res.Summary = fmt.Sprintf("%s %s: %s", op.cmd, x.ct, op.want)
	}
	if op.reason != "" {
		res.Summary += " (" + op.reason + ")"
	}
	return res, nil
}

// Stop implements [activities.PVEStop] (memory state is lost). Undo holds
// the status before the first attempt, so the compensating pve.start only
// starts a container that was running.
func (a *Activities) Stop(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEStopParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	return a.power(ctx, in, powerOp{action: activities.PVEStop, cmd: "stop", taskType: "vzstop", want: "stopped", asset: p.Asset, reason: p.Reason})
}

// Shutdown implements [activities.PVEShutdown]: a clean shutdown with the
// timeout as grace period, forced after it when force is true.
func (a *Activities) Shutdown(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEShutdownParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	body := map[string]any{"timeout": int(p.Timeout.Seconds())}
	if p.Force {
		body["forceStop"] = 1
	}
	return a.power(ctx, in, powerOp{action: activities.PVEShutdown, cmd: "shutdown", taskType: "vzshutdown", want: "stopped", body: body, timeout: p.Timeout,
		asset: p.Asset, reason: p.Reason})
}

// Start implements [activities.PVEStart]; a running container is a success.
// As a compensation it leaves alone a container whose Undo says it was
// stopped before.
func (a *Activities) Start(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEStartParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	return a.power(ctx, in, powerOp{action: activities.PVEStart, cmd: "start", taskType: "vzstart", want: "running", asset: p.Asset})
}

// Backup implements [activities.PVEBackup]: vzdump of the container on its
// own node to the storage, protected, with notes "iru-forensic:<key> …". A
// retry finds the archive by its notes or waits for the running vzdump.
func (a *Activities) Backup(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEBackupParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.begin(ctx, in, activities.PVEBackup, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	sid := cmp.Or(p.Storage, a.cfg.BackupStorage)
	if !reStorageID.MatchString(sid) {
		return activities.ActionResult{}, final(activities.ErrTypeBadParams, fmt.Sprintf("%s: parameter storage: %q is not a storage id", x.what(), sid))
	}
	mode := p.Mode
	key := in.IdempotencyKey
	if key == "" {
		key = in.IncidentID + "/" + in.StepID
	}
	mark := forensicNotesPrefix + key
	find := func() (string, error) {
		list, err := x.backups(ctx, sid)
		if err != nil {
			return "", err
		}
		for _, v := range list {
			if v.Notes == mark || strings.HasPrefix(v.Notes, mark+" ") {
				return v.VolID, nil
			}
		}
		return "", nil
	}
	if in.DryRun {
		if err := x.requirePrivs(ctx, fmt.Sprintf("/vms/%d", x.ct.VMID), "VM.Backup"); err != nil {
			return activities.ActionResult{}, err
		}
		if err := x.requirePrivs(ctx, "/storage/"+sid, "Datastore.AllocateSpace"); err != nil {
			return activities.ActionResult{}, err
		}
		v, err := find() // also checks that the storage exists on the node
		if err != nil {
			return activities.ActionResult{}, err
		}
		plan := []string{fmt.Sprintf("vzdump %s (mode %s) to storage %s on %s, protected, notes %q", x.ct, mode, sid, x.ct.Node, mark)}
		if v != "" {
			plan = []string{"nothing to do: backup " + v + " exists"}
		}
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"volid": v}, Summary: "dry run: " + plan[0]}, nil
	}
	err = x.withLockWait(ctx, func() error {
		if v, err := find(); err != nil || v != "" {
			return err
		}
		if upid, err := x.activeTask(ctx, "vzdump"); err != nil {
			return err
		} else if upid != "" {
			_ = x.waitTask(ctx, upid)
			if v, err := find(); err != nil || v != "" {
				return err
			}
		}
		_, err := x.runTask(ctx, http.MethodPost, fmt.Sprintf("/nodes/%s/vzdump", x.ct.Node), map[string]any{
			"vmid": strconv.Itoa(x.ct.VMID), "mode": mode, "storage": sid, "compress": "zstd", "protected": 1,
			"notes-template": mark + " {{guestname}}",
		})
		return err
	})
	if err != nil {
		return activities.ActionResult{}, err
	}
	v, err := find()
	if err != nil {
		return activities.ActionResult{}, err
	}
	if v == "" {
		return activities.ActionResult{}, verifyError(fmt.Sprintf("%s: the vzdump task succeeded but storage %s lists no archive with notes %q", x.what(), sid, mark))
	}
	return activities.ActionResult{Outputs: map[string]string{"volid": v}, Summary: fmt.Sprintf("backed up %s to %s (%s)", x.ct, v, mode)}, nil
}

// Restore implements [activities.PVERestore]. "from" is a backup volid
// (storage:backup/…): the container is stopped if needed and rebuilt with
// POST /nodes/{node}/lxc restore=1 force=1; or a snapshot name: the
// container is rolled back. IRU's own forensic backups are refused. A
// container quarantined by this incident stays quarantined: the isolation
// is re-applied on the restored state (which becomes the new prior state).
func (a *Activities) Restore(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVERestoreParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.begin(ctx, in, activities.PVERestore, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	from := p.From
	st, err := x.readState(ctx)
	if err != nil {
		return activities.ActionResult{}, err
	}
	rec, err := x.trustedRecord(ctx, st)
	if err != nil {
		return activities.ActionResult{}, err
	}
	// A restore replaces the description (and, from a backup, the firewall):
	// the isolation to re-apply is remembered in the heartbeat, so a retry
	// after the restore but before the re-isolation still re-applies it.
	iso := earlier(ctx).Isolation
	if rec != nil {
		iso = &isolationRef{Incident: rec.Incident, Method: rec.Method, Allow: rec.Allow}
	}
	x.prog.Isolation = iso
	x.beat(ctx)
	vmPath := fmt.Sprintf("/vms/%d", x.ct.VMID)
	var plan []string
	var restore func() error
	if strings.Contains(from, ":") {
		sid, _, _ := strings.Cut(from, ":")
		list, err := x.backups(ctx, sid)
		if err != nil {
			return activities.ActionResult{}, err
		}
		var vol *backupVolume
		for i := range list {
			if list[i].VolID == from {
				vol = &list[i]
			}
		}
		if vol == nil {
			return activities.ActionResult{}, final(activities.ErrTypeNotFound, fmt.Sprintf("%s: backup %s of this container does not exist on %s", x.what(), from, x.ct.Node))
		}
		if strings.HasPrefix(vol.Notes, forensicNotesPrefix) {
			return activities.ActionResult{}, final(activities.ErrTypePrecondition, fmt.Sprintf("%s: %s is a forensic copy of the compromised container (notes %q); restore from a clean backup", x.what(), from, vol.Notes))
		}
		target := p.Storage
		if target == "" {
			target, _, _ = strings.Cut(str(st.conf["rootfs"]), ":")
		}
		plan = append(plan, fmt.Sprintf("stop %s if it runs", x.ct), fmt.Sprintf("restore %s from %s onto storage %s (restore=1 force=1)", x.ct, from, target))
		if in.DryRun {
			if err := x.requirePrivs(ctx, vmPath, "VM.Backup", "VM.PowerMgmt"); err != nil {
				return activities.ActionResult{}, err
			}
			if err := x.requirePrivs(ctx, "/storage/"+target, "Datastore.AllocateSpace"); err != nil {
				return activities.ActionResult{}, err
			}
		}
		restore = func() error {
			if upid, err := x.activeTask(ctx, "vzrestore"); err != nil {
				return err
			} else if upid != "" {
				return x.waitTask(ctx, upid) // an earlier attempt's restore
			}
			if upid, err := x.activeTask(ctx, "vzstop"); err != nil {
				return err
			} else if upid != "" {
				_ = x.waitTask(ctx, upid)
			}
			if cur, err := x.status(ctx); err != nil {
				return err
			} else if cur == "running" {
				if _, err := x.runTask(ctx, http.MethodPost, x.ct.path("/status/stop"), nil); err != nil {
					return err
				}
			}
			_, err := x.runTask(ctx, http.MethodPost, fmt.Sprintf("/nodes/%s/lxc", x.ct.Node), map[string]any{
				"vmid": x.ct.VMID, "ostemplate": from, "restore": 1, "force": 1, "storage": target,
			})
			return err
		}
	} else {
		found, _, err := x.findSnapshot(ctx, from, in.IncidentID)
		if err != nil {
			return activities.ActionResult{}, err
		}
		if !found {
			return activities.ActionResult{}, final(activities.ErrTypeNotFound, fmt.Sprintf("%s: snapshot %q does not exist", x.what(), from))
		}
		plan = append(plan, fmt.Sprintf("roll %s back to snapshot %q (stopped afterwards)", x.ct, from))
		if in.DryRun {
			if err := x.requirePrivs(ctx, vmPath, "VM.Snapshot.Rollback"); err != nil {
				return activities.ActionResult{}, err
			}
		}
		restore = func() error {
			if upid, err := x.activeTask(ctx, "vzrollback"); err != nil {
				return err
			} else if upid != "" {
				return x.waitTask(ctx, upid)
			}
			_, err := x.runTask(ctx, http.MethodPost, x.ct.path("/snapshot/"+from+"/rollback"), map[string]any{"start": 0})
			return err
		}
	}
	if iso != nil {
		plan = append(plan, fmt.Sprintf("re-apply the %s isolation of incident %s on the restored state", iso.Method, iso.Incident))
	}
	if in.DryRun {
		return activities.ActionResult{Plan: plan, Outputs: map[string]string{"status": "stopped"}, Summary: "dry run: " + strings.Join(plan, "; ")}, nil
	}
	if err := x.withLockWait(ctx, restore); err != nil {
		return activities.ActionResult{}, err
	}
	summary := fmt.Sprintf("restored %s from %s", x.ct, from)
	if iso != nil {
		again, err := x.isolateVerified(ctx, isolateRequest{incident: iso.Incident, method: iso.Method, allow: iso.Allow})
		if err != nil {
			return activities.ActionResult{}, err
		}
		summary += fmt.Sprintf("; isolation (%s) re-applied, prior state now %s", again.rec.Method, again.rec.EvidenceRef)
	}
	cur, err := x.status(ctx)
	if err != nil {
		return activities.ActionResult{}, err
	}
	return activities.ActionResult{Outputs: map[string]string{"status": cur}, Summary: summary}, nil
}
