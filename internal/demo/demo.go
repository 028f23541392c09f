//go:build localstack

// Package demo plays the scripted incident of the README (a compromised
// container, and the Keycloak account seen in it) against a running local
// stack and its lab. It is only in builds with the localstack tag.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/lab"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/workflows"
)

// Options are the running stack the scenario plays against.
type Options struct {
	// Out receives the scenario's progress.
	Out io.Writer
	// Lab is the stack's lab; the scenario checks it at each step.
	Lab *lab.Lab
	// Client queries the incident's status.
	Client client.Client
	// APIAddr is the API server's host:port (intake and responder API).
	APIAddr string
	// StateDir is the stack's state folder: the detectors' API keys are in
	// its detector-keys/, the report is written to its reports/.
	StateDir string
	// Asset is the lab container the alert names, User the Keycloak
	// account logged in to it.
	Asset, User string
	// Key is the incident's correlation key: its id in the API.
	Key string
}

// Run plays the README's scenario against the running stack, through the
// same doors a detector and a responder use: a Falco alert posted to the
// intake with the detector's API key, and a lead who logs in through
// Keycloak and approves through the responder API. It reports progress in
// plain words, checks the lab at each step and returns the path of the
// post-incident report it wrote.
func Run(ctx context.Context, o Options) (reportPath string, err error) {
	d := &demo{out: o.Out, lab: o.Lab, client: o.Client, apiAddr: o.APIAddr, stateDir: o.StateDir, asset: o.Asset, user: o.User, key: o.Key}
	return d.run(ctx)
}

// demo is one play of the scenario.
type demo struct {
	out      io.Writer
	lab      *lab.Lab
	client   client.Client
	apiAddr  string
	stateDir string
	asset    string
	user     string
	key      string // correlation key: the incident's id in the API
	token    string // bob's access token
	// since is when the alert was posted: an earlier incident with the
	// same key (a previous `starter up`) is not this one.
	since time.Time
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, "  · "+format+"\n", args...) }

func (d *demo) run(ctx context.Context) (reportPath string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	fmt.Fprintln(d.out, "==> scenario: a compromised container, and the Keycloak account seen in it")
	pveState := d.lab.PVE.State()
	var vmid int
	for _, ct := range pveState.Containers {
		if ct.Config["hostname"] == d.asset {
			vmid = ct.VMID
		}
	}
	if vmid == 0 {
		return "", fmt.Errorf("the lab has no container %s", d.asset)
	}
	gc := gocloak.NewClient(d.lab.Keycloak.URL())
	if _, err := gc.Login(ctx, keycloak.ConsoleClientID, "", keycloak.Realm, d.user, keycloak.UserPassword); err != nil {
		return "", fmt.Errorf("log %s in: %w", d.user, err)
	}
	d.say("%s is logged in to Keycloak (1 session); %s (CT %d) is running", d.user, d.asset, vmid)

	// 1. The detector.
	d.since = time.Now().Add(-time.Second)
	if err := d.postFalcoAlert(ctx); err != nil {
		return "", err
	}
	wfID := workflows.IncidentWorkflowID(d.key)

	// 2. Containment, with no one's approval.
	st, err := d.waitFor(ctx, wfID, "containment", func(st workflows.IncidentStatus) bool { return stepDone(st, "isolate") && stepDone(st, "snapshot") })
	if err != nil {
		return "", err
	}
	iso, err := d.lab.PVE.EffectiveIsolation(vmid)
	if err != nil || !iso.FirewallIsolated {
		return "", fmt.Errorf("%s is not isolated in the lab: %+v %v", d.asset, iso, err)
	}
	d.say("incident %s opened; %s isolated: firewall DROP both ways, only %s open (contained %s after the alert)",
		st.IncidentID, d.asset, strings.Join(iso.AllowedNetworks, ", "), st.Metrics.TimeToContain.Round(time.Millisecond))
	d.say("evidence snapshot %s taken", outputOr(st, "snapshot", "name", "ir-"+st.IncidentID))
	if sess, err := d.lab.Keycloak.Sessions(keycloak.Realm, d.user); err != nil || len(sess) != 0 {
		return "", fmt.Errorf("%s still has %d Keycloak sessions: %v", d.user, len(sess), err)
	}
	d.say("%s's Keycloak sessions revoked (0 left)", d.user)

	// 3. Remediation waits for a lead.
	if _, err := d.waitFor(ctx, wfID, "the approval request", func(st workflows.IncidentStatus) bool { return stepIs(st, "shutdown", workflows.StepWaitingApproval) }); err != nil {
		return "", err
	}
	d.say("investigation done (evidence collected, forensic backup taken); remediation waits for an ir-lead's approval")
	// The realm asks an ir-lead for a second factor: bob's authenticator app holds his lab seed.
	tok, err := gc.LoginOtp(ctx, keycloak.ConsoleClientID, "", keycloak.Realm, "bob", keycloak.UserPassword,
		keycloak.TOTPCode("bob", time.Now()))
	if err != nil {
		return "", fmt.Errorf("bob's login: %w", err)
	}
	d.token = tok.AccessToken
	d.say("bob (ir-lead) logs in through Keycloak with his password and one-time code, and approves the rebuild through the API")
	for _, step := range []string{"shutdown", "restore"} {
		if _, err := d.waitFor(ctx, wfID, step+" approval", func(st workflows.IncidentStatus) bool { return stepIs(st, step, workflows.StepWaitingApproval) }); err != nil {
			return "", err
		}
		if err := d.approve(ctx, step); err != nil {
			return "", err
		}
		d.say("bob approved %s", step)
	}

	// 4. Recovery and post-incident: wait until the incident is closed, so
	// that the next alert for this container opens a new one.
	st, err = d.waitFor(ctx, wfID, "recovery and the report", func(st workflows.IncidentStatus) bool { return st.State != workflows.StateOpen })
	if err != nil {
		return "", err
	}
	if st.State != workflows.StateResolved {
		return "", fmt.Errorf("incident ended %s: %s", st.State, st.Reason)
	}
	iso, _ = d.lab.PVE.EffectiveIsolation(vmid)
	d.say("service restored from %s, health checked (%s), isolation lifted (%v); recovered %s after the alert",
		outputOr(st, "restore", "from", "the last clean backup"), outputOr(st, "probe", "status", "ok"), !iso.FirewallIsolated,
		st.Metrics.TimeToRecover.Round(time.Millisecond))
	report, err := d.fetchReport(ctx)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(d.stateDir, "reports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	reportPath = filepath.Join(dir, st.IncidentID+".md")
	if err := os.WriteFile(reportPath, report, 0o600); err != nil {
		return "", err
	}
	d.say("post-incident report written: %s (audit chain signed in the HSM)", reportPath)
	return reportPath, nil
}

func (d *demo) postFalcoAlert(ctx context.Context) error {
	key, err := os.ReadFile(filepath.Join(d.stateDir, "detector-keys", "falco"))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	alert := map[string]any{
		"uuid": uuid.NewString(), "priority": "Critical", "rule": "Terminal shell in container", "source": "syscall",
		"time": now.Format(time.RFC3339Nano), "hostname": "pve1", "tags": []string{"container", "shell", "mitre_execution"},
		"output": fmt.Sprintf("A shell was spawned in a container with an attached terminal (user=root container=%s shell=bash)", d.asset),
		"output_fields": map[string]any{
			"container.name": d.asset, "proc.name": "bash", "user.name": "root", "evt.time": now.UnixNano(),
			// Falcosidekick customfields: who was logged in. The health probe's
			// target comes from the inventory and IRU_PROBE_TARGETS, not the alert.
			"username": d.user, "realm": keycloak.Realm,
		},
	}
	body, _ := json.Marshal(alert)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.apiAddr+"/v1/alerts/falco", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post the alert: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("the intake answered %s: %s", resp.Status, b)
	}
	d.say("Falco reports %q in %s (user %s); the intake accepted it: %s", "Terminal shell in container", d.asset, d.user, strings.TrimSpace(string(b)))
	return nil
}

func (d *demo) approve(ctx context.Context, step string) error {
	u := fmt.Sprintf("http://%s/api/v1/incidents/%s/steps/%s/approve", d.apiAddr, url.PathEscape(d.key), step)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{"reason":"evidence preserved; rebuild from the last clean backup"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("approve %s: %s: %s", step, resp.Status, b)
	}
	return nil
}

func (d *demo) fetchReport(ctx context.Context) ([]byte, error) {
	u := fmt.Sprintf("http://%s/api/v1/incidents/%s/report?format=markdown", d.apiAddr, url.PathEscape(d.key))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("report: %s: %s %v", resp.Status, b, err)
	}
	return b, nil
}

// waitFor polls the incident's status until done(status) or the incident
// ends without it.
func (d *demo) waitFor(ctx context.Context, wfID, what string, done func(workflows.IncidentStatus) bool) (workflows.IncidentStatus, error) {
	var st workflows.IncidentStatus
	for {
		v, err := d.client.QueryWorkflow(ctx, wfID, "", workflows.StatusQuery)
		if err == nil && v.Get(&st) == nil && !st.OpenedAt.After(d.since) && st.State == workflows.StateOpen {
			return st, fmt.Errorf("incident %s, opened %s by an earlier run, is still open (phase %s): the alert joined it; close it (starter incident abort %s) or use a fresh IRU_STATE_DIR",
				st.IncidentID, st.OpenedAt.Format(time.RFC3339), st.Phase, d.key)
		}
		if err == nil && st.OpenedAt.After(d.since) {
			if done(st) {
				return st, nil
			}
			for _, s := range st.Steps {
				if s.Status == workflows.StepFailed {
					return st, fmt.Errorf("step %s failed: %s", s.ID, s.Error)
				}
			}
			if st.State != workflows.StateOpen {
				return st, fmt.Errorf("incident ended %s (%s) while waiting for %s", st.State, st.Reason, what)
			}
		}
		select {
		case <-ctx.Done():
			return st, errors.Join(fmt.Errorf("waiting for %s", what), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func stepIs(st workflows.IncidentStatus, id, status string) bool {
	for _, s := range st.Steps {
		if s.ID == id {
			return s.Status == status
		}
	}
	return false
}

func stepDone(st workflows.IncidentStatus, id string) bool {
	return stepIs(st, id, workflows.StepSucceeded)
}

func outputOr(st workflows.IncidentStatus, step, key, def string) string {
	for _, s := range st.Steps {
		if s.ID == step {
			if v := s.Outputs[key]; v != "" {
				return v
			}
			if v := s.Params[key]; v != "" {
				return v
			}
		}
	}
	return def
}
