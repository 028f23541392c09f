package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/decision"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/workflows"
)

// preflightApprover approves the gated steps of a dry run: nothing changes
// in a dry run, so its approvals only let the plan reach every phase.
var preflightApprover = workflows.Approver{Subject: "system:preflight-approver", Username: "preflight"}

func newPreflightCmd() *cobra.Command {
	var (
		asset, severity string
		labels          []string
		asJSON          bool
		timeout         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "preflight PLAYBOOK --asset ASSET [--label k=v ...]",
		Short: "Dry-run a playbook against a real asset: check preconditions and permissions, print what each step would change",
		Long: `preflight runs PLAYBOOK as a dry-run incident on the worker: every action checks
its preconditions and the platform's permissions against the real Proxmox VE and
Keycloak and returns its plan, and changes nothing. Gated steps are approved by
the preflight itself (a dry run changes nothing). It exits 1 if a step would fail.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg clientConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			lbl := map[string]string{}
			for _, kv := range labels {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return &exitError{code: 2, err: fmt.Errorf("--label %q: want key=value", kv)}
				}
				lbl[k] = v
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c, prot, err := dial(ctx, cfg.Temporal, cfg.Protection, logging.New(io.Discard, cfg.Log, "starter"))
			if err != nil {
				return err
			}
			defer func() { _ = prot.Close() }()
			defer c.Close()
			st, err := preflight(ctx, c, prot.Keys.DecisionSigner(), args[0], asset, severity, lbl)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st.Steps); err != nil {
					return err
				}
			} else {
				printPlan(out, st)
			}
			for _, s := range st.Steps {
				if s.Status == workflows.StepFailed {
					return &exitError{code: 1, err: fmt.Errorf("preflight: step %s would fail: %s", s.ID, s.Error)}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&asset, "asset", "", "the asset (container name, vmid or IP) the playbook acts on")
	cmd.Flags().StringVar(&severity, "severity", "high", "incident severity")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "alert label key=value (e.g. username=jdoe, realm=iru)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the steps as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	_ = cmd.MarkFlagRequired("asset")
	return cmd
}

// preflight runs the dry-run incident to its end and returns its status.
// Its approvals are signed with the HSM's decision key (signer), as the
// API server signs responders' decisions.
func preflight(ctx context.Context, c client.Client, signer decision.Signer, playbook, asset, severity string, labels map[string]string) (workflows.IncidentStatus, error) {
	id := uuid.NewString()
	in := workflows.IncidentInput{
		IncidentID: "PRE-" + id[:8], Key: "preflight:" + id, Asset: asset, Severity: severity, Playbook: playbook,
		DryRun: true, OpenedBy: "system:preflight",
		Alerts: []workflows.Alert{{ID: id, Fingerprint: "preflight:" + id, Source: "preflight", Rule: "preflight", Severity: severity,
			Asset: asset, Summary: "preflight dry run of " + playbook, Labels: labels, ObservedAt: time.Now().UTC(), ReceivedAt: time.Now().UTC()}},
	}
	wfID := workflows.IncidentWorkflowID(in.Key)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wfID, TaskQueue: workflows.TaskQueue}, workflows.IncidentWorkflow, in)
	if err != nil {
		return workflows.IncidentStatus{}, fmt.Errorf("preflight: start: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- run.Get(ctx, nil) }()
	approved := map[string]bool{}
	for {
		select {
		case err := <-done:
			if err != nil {
				return workflows.IncidentStatus{}, fmt.Errorf("preflight: %w", err)
			}
			v, err := c.QueryWorkflow(ctx, wfID, run.GetRunID(), workflows.StatusQuery)
			if err != nil {
				return workflows.IncidentStatus{}, fmt.Errorf("preflight: status: %w", err)
			}
			var st workflows.IncidentStatus
			return st, v.Get(&st)
		case <-time.After(200 * time.Millisecond):
		}
		v, err := c.QueryWorkflow(ctx, wfID, run.GetRunID(), workflows.StatusQuery)
		if err != nil {
			continue
		}
		var st workflows.IncidentStatus
		if v.Get(&st) != nil {
			continue
		}
		for _, s := range st.Steps {
			if s.Status != workflows.StepWaitingApproval || s.Approval == nil || approved[s.ID] {
				continue
			}
			// Distinct approvers up to the quorum, with the step's roles.
			for i := len(s.Approval.Approvals); i < max(s.Approval.Quorum, 1); i++ {
				who := preflightApprover
				who.Subject, who.Roles = fmt.Sprintf("%s-%d", who.Subject, i+1), s.Approval.Roles
				now := time.Now()
				stmt, err := decision.Sign(ctx, signer, decision.Statement{WorkflowID: wfID, RunID: run.GetRunID(), StepID: s.ID,
					Decision: decision.Approve, Subject: who.Subject, Username: who.Username, Roles: who.Roles,
					SessionID: "system:preflight", TokenID: id, AMR: []string{"hwk"}, Reason: "preflight dry run",
					IssuedAt: now, ExpiresAt: now.Add(decision.DefaultTTL), Nonce: decision.NewNonce()})
				if err != nil {
					return st, fmt.Errorf("preflight: sign approval of %s: %w", s.ID, err)
				}
				h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: wfID, RunID: run.GetRunID(), UpdateName: workflows.ApproveUpdate,
					WaitForStage: client.WorkflowUpdateStageCompleted,
					Args:         []any{workflows.DecisionInput{StepID: s.ID, Approver: who, Reason: "preflight dry run", Statement: stmt}}})
				if err == nil {
					err = h.Get(ctx, nil)
				}
				if err != nil {
					return st, fmt.Errorf("preflight: approve %s: %w", s.ID, err)
				}
			}
			approved[s.ID] = true
		}
	}
}

func printPlan(w io.Writer, st workflows.IncidentStatus) {
	fmt.Fprintf(w, "preflight %s of %s on %s: %s\n", st.IncidentID, st.Playbook, st.Asset, st.State)
	phase := ""
	for _, s := range st.Steps {
		if s.Phase != phase {
			phase = s.Phase
			fmt.Fprintf(w, "%s\n", phase)
		}
		fmt.Fprintf(w, "  %-18s %-24s %s\n", s.ID, s.Action, s.Status)
		for _, p := range s.Plan {
			fmt.Fprintf(w, "      would: %s\n", p)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "      ERROR: %s\n", s.Error)
		} else if s.Summary != "" && len(s.Plan) == 0 {
			fmt.Fprintf(w, "      %s\n", s.Summary)
		}
	}
}
