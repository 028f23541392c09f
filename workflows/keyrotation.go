package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
)

// Settings of the intake key rotation.
const (
	// IntakeKeyRotationInterval is the rotation period the security guide
	// asks for: 90 days.
	IntakeKeyRotationInterval = 90 * 24 * time.Hour
)

// RotateIntakeKeysInput is the input of [RotateIntakeKeys].
type RotateIntakeKeysInput struct {
	// Source rotates only this detector ("" : every detector with API keys).
	Source string `json:",omitempty"`
	// Reason is recorded with the rotation ("" : the scheduled reason).
	Reason string `json:",omitempty"`
	// DryRun plans and changes nothing.
	DryRun bool `json:",omitempty"`
}

// RotatedIntakeKey is one detector's new key: its id and where the key is.
type RotatedIntakeKey struct {
	Detector string
	KeyID    string
	// SecretRef references the key in the secret store; the key itself is
	// never in the workflow.
	SecretRef string
}

// RotateIntakeKeysResult is the result of [RotateIntakeKeys].
type RotateIntakeKeysResult struct {
	Rotated []RotatedIntakeKey `json:",omitempty"`
	// Plan is what a dry run would do.
	Plan    []string `json:",omitempty"`
	Summary string   `json:",omitempty"`
}

// DefaultIntakeKeyRotationReason is the reason of a scheduled rotation.
const DefaultIntakeKeyRotationReason = "scheduled rotation of the intake API keys (every 90 days)"

// RotateIntakeKeys rotates the detector intake API keys by running
// [activities.KeysRotateIntakeKeys] once, with the workflow id as its
// idempotency key: a retried activity, or the same workflow id run again,
// converges on the keys the first attempt minted. It records nothing in
// incident ledgers; it is not an incident.
func RotateIntakeKeys(ctx workflow.Context, in RotateIntakeKeysInput) (RotateIntakeKeysResult, error) {
	act, err := activities.Lookup(activities.KeysRotateIntakeKeys)
	if err != nil {
		return RotateIntakeKeysResult{}, err
	}
	opts := act.Options()
	// A rotation that fails waits 90 days for the next one: retry longer
	// than a playbook step would, still final on the stable error types.
	opts.RetryPolicy.MaximumAttempts = 10
	opts.RetryPolicy.MaximumInterval = time.Minute
	ctx = workflow.WithActivityOptions(ctx, opts)

	reason := in.Reason
	if reason == "" {
		reason = DefaultIntakeKeyRotationReason
	}
	params := map[string]string{"reason": reason}
	if in.Source != "" {
		params["source"] = in.Source
	}
	info := workflow.GetInfo(ctx)
	ai := activities.ActionInput{
		StepID:         "rotate_intake_keys",
		Action:         activities.KeysRotateIntakeKeys,
		Params:         params,
		IdempotencyKey: "intake-keys:" + info.WorkflowExecution.ID,
		DryRun:         in.DryRun,
	}
	var res activities.ActionResult
	if err := workflow.ExecuteActivity(ctx, activities.KeysRotateIntakeKeys, ai).Get(ctx, &res); err != nil {
		return RotateIntakeKeysResult{}, fmt.Errorf("rotate intake keys: %w", err)
	}
	out := RotateIntakeKeysResult{Plan: res.Plan, Summary: res.Summary}
	if in.DryRun {
		return out, nil
	}
	for item := range strings.SplitSeq(res.Outputs["rotated"], ",") {
		if item == "" {
			continue
		}
		det, kid, ok := strings.Cut(item, ":")
		if !ok {
			return RotateIntakeKeysResult{}, fmt.Errorf("rotate intake keys: malformed rotated output %q", item)
		}
		ref := res.Outputs[activities.IntakeKeyRefOutputPrefix+det]
		if ref == "" {
			return RotateIntakeKeysResult{}, fmt.Errorf("rotate intake keys: no secret reference for detector %q", det)
		}
		out.Rotated = append(out.Rotated, RotatedIntakeKey{Detector: det, KeyID: kid, SecretRef: ref})
	}
	return out, nil
}
