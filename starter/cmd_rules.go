package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/intake/route"
)

// rulesConfig configures `starter rules test`.
type rulesConfig struct {
	IntakeConfig string `env:"IRU_INTAKE_CONFIG" doc:"Detector intake configuration (YAML: spool, detectors, rules); empty serves the responder API only."`
	PVE          pveact.Config
}

func newRulesCmd() *cobra.Command {
	rules := &cobra.Command{Use: "rules", Short: "The routing rules that map alerts to playbooks"}
	var format, rulesFile string
	var asJSON bool
	test := &cobra.Command{
		Use:   "test ALERT.json",
		Short: "Show which playbook an alert would start, for which asset and incident, and why",
		Long: `test parses ALERT.json as the detector format says (alertmanager, falco, wazuh,
generic), maps its asset through the Proxmox VE inventory when IRU_PVE_URL is
set (otherwise the asset stays as the detector named it and is routed as
if known; with an inventory, an unknown asset opens a triage), and applies the
routing rules of IRU_INTAKE_CONFIG (or --rules, or the shipped defaults).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg rulesConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			body, err := os.ReadFile(args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			parser, err := parse.ForFormat(format)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			alerts, err := parser(body)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("%s: %w", args[0], err)}
			}
			rs, err := loadRules(rulesFile, cfg.IntakeConfig)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			var src inventory.Source = noAssets{}
			if cfg.PVE.URL != "" {
				inv, err := pveact.NewInventory(cfg.PVE)
				if err != nil {
					return err
				}
				src = inv
			}
			inv := inventory.New(src, inventory.Options{})
			decide := intake.Decide
			if cfg.PVE.URL == "" {
				decide = intake.DecideRules
			}
			var out []map[string]any
			for i := range alerts {
				d := decide(cmd.Context(), inv, rs, &alerts[i])
				out = append(out, map[string]any{
					"alert": d.Alert.Rule, "severity": d.Alert.Severity, "asset": d.Asset.Asset.Name, "mapped": d.Asset.Mapped,
					"mapped_by": d.Asset.By, "playbook": d.Route.Playbook, "rule": d.Route.RuleName, "why": d.Route.Reason,
					"skipped": d.Route.Skipped, "key": d.Key, "workflow_id": d.WorkflowID(),
				})
			}
			return printDecisions(cmd.OutOrStdout(), out, asJSON)
		},
	}
	test.Flags().StringVar(&format, "format", "generic", "alert format: alertmanager, falco, wazuh or generic")
	test.Flags().StringVar(&rulesFile, "rules", "", "rules file (default: the intake configuration's, else the shipped rules)")
	test.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	rules.AddCommand(test)
	return rules
}

// loadRules loads the rules file given, or the intake configuration's, or
// the shipped defaults.
func loadRules(file, intakeConfig string) (*route.Rules, error) {
	if file == "" && intakeConfig != "" {
		icfg, err := intake.LoadConfig(intakeConfig)
		if err != nil {
			return nil, err
		}
		file = icfg.RulesFile
	}
	if file != "" {
		return route.Load(file)
	}
	return route.Default()
}

// noAssets is an empty inventory: every asset stays unmapped.
type noAssets struct{}

func (noAssets) Assets(context.Context) ([]inventory.Asset, error) { return nil, nil }

func printDecisions(w io.Writer, ds []map[string]any, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ds)
	}
	if len(ds) == 0 {
		return errors.New("the payload holds no alert")
	}
	for _, d := range ds {
		mapped := "not in the inventory (incident keyed by the detector's name)"
		if d["mapped"] == true {
			mapped = fmt.Sprintf("mapped by %v", d["mapped_by"])
		}
		fmt.Fprintf(w, "alert     %v (%v)\nasset     %v, %s\nplaybook  %v\nrule      %v\nwhy       %v\nincident  %v (workflow %v)\n",
			d["alert"], d["severity"], d["asset"], mapped, d["playbook"], orNone(d["rule"]), d["why"], d["key"], d["workflow_id"])
		if sk, _ := d["skipped"].([]string); len(sk) > 0 {
			fmt.Fprintf(w, "skipped   %s\n", strings.Join(sk, "\n          "))
		}
		fmt.Fprintln(w)
	}
	return nil
}

func orNone(v any) string {
	if s, _ := v.(string); s != "" {
		return s
	}
	return "(the default playbook)"
}
