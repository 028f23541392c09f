package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/detectorsfile"
	"github.com/iru-responder/responder/internal/intake/parse"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/internal/schedules"
	"github.com/iru-responder/responder/internal/sharedstate"
	"github.com/iru-responder/responder/workflows"
)

// keysFileConfig locates the detectors for `starter keys add-detector`:
// the shared store when IRU_SHARED_STATE_DSN is set, else the file.
type keysFileConfig struct {
	detectorsfile.Config
	Shared sharedstate.Config
}

// Validate implements config.Validator.
func (c *keysFileConfig) Validate() error {
	return errors.Join(c.Config.Validate(), c.Shared.Validate())
}

// detectorStore opens where the detectors live: --file, else the shared
// store, else IRU_INTAKE_DETECTORS_FILE. The caller calls closeStore.
func detectorStore(ctx context.Context, file string) (store detectorsfile.Store, closeStore func(), err error) {
	if file != "" {
		return detectorsfile.FileStore{Path: file}, func() {}, nil
	}
	var cfg keysFileConfig
	if err := config.Load(&cfg); err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	if cfg.Shared.Enabled() {
		st, err := sharedstate.Open(ctx, cfg.Shared, nil)
		if err != nil {
			return nil, nil, err
		}
		return st, st.Close, nil
	}
	if cfg.Path == "" {
		return nil, nil, &exitError{code: 2, err: errors.New("no detectors: set IRU_SHARED_STATE_DSN, IRU_INTAKE_DETECTORS_FILE or --file")}
	}
	return detectorsfile.FileStore{Path: cfg.Path}, func() {}, nil
}

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Rotate the detector intake API keys (schedule keys:intake-rotation) and set up detectors",
	}
	cmd.AddCommand(newKeysScheduleCmd(), newKeysRotateIntakeCmd(), newKeysAddDetectorCmd(), newKeysImportDetectorsCmd(), newKeysDecisionKeyCmd())
	return cmd
}

// keysDial dials Temporal with the client configuration and payload codec.
func keysDial(ctx context.Context, run func(ctx context.Context, c client.Client) error) error {
	var cfg clientConfig
	if err := config.Load(&cfg); err != nil {
		return &exitError{code: 2, err: err}
	}
	c, prot, err := dial(ctx, cfg.Temporal, cfg.Protection, logging.New(io.Discard, cfg.Log, "starter"))
	if err != nil {
		return err
	}
	defer func() { _ = prot.Close() }()
	defer c.Close()
	return run(ctx, c)
}

func newKeysScheduleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schedule",
		Short: "Create or update the schedule that rotates the intake API keys every 90 days",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return keysDial(cmd.Context(), func(ctx context.Context, c client.Client) error {
				change, err := schedules.EnsureIntakeKeyRotation(ctx, c.ScheduleClient(), workflows.TaskQueue)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "schedule %s %s: every %s, overlapping runs skipped\n",
					workflows.IntakeKeyRotationScheduleID, change, formatDays(workflows.IntakeKeyRotationInterval))
				return nil
			})
		},
	}
}

func newKeysRotateIntakeCmd() *cobra.Command {
	var (
		in      workflows.RotateIntakeKeysInput
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate-intake",
		Short: "Rotate the intake API keys now and print where each new key is",
		Long: "Runs the rotation workflow on the worker: each detector (or --source) gets a new API key, stored in the\n" +
			"worker's secret folder (IRU_SECRETS_DIR); older keys stay valid for IRU_INTAKE_KEY_OVERLAP. Prints the\n" +
			"secret reference of each new key, never the key.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in.Reason == "" {
				in.Reason = "manual rotation (starter keys rotate-intake)"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return keysDial(ctx, func(ctx context.Context, c client.Client) error {
				run, err := schedules.RunIntakeKeyRotation(ctx, c, workflows.TaskQueue, in)
				if err != nil {
					return err
				}
				printRotation(cmd.OutOrStdout(), run)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&in.Source, "source", "", "rotate only this detector")
	cmd.Flags().StringVar(&in.Reason, "reason", "", "reason recorded with the rotation")
	cmd.Flags().BoolVar(&in.DryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up waiting after this long")
	return cmd
}

func printRotation(w io.Writer, r schedules.IntakeKeyRotationRun) {
	fmt.Fprintf(w, "workflow %s\n", r.WorkflowID)
	for _, p := range r.Result.Plan {
		fmt.Fprintf(w, "  plan: %s\n", p)
	}
	for _, k := range r.Result.Rotated {
		fmt.Fprintf(w, "  %-20s %-22s %s\n", k.Detector, k.KeyID, k.SecretRef)
	}
	if r.Result.Summary != "" {
		fmt.Fprintln(w, r.Result.Summary)
	}
}

func newKeysAddDetectorCmd() *cobra.Command {
	var format, file string
	cmd := &cobra.Command{
		Use:   "add-detector NAME",
		Short: "Add a detector with a first API key to the detectors file and print the key once",
		Long: "Mints an API key for a new detector, writes its hash to the detectors file (--file or\n" +
			"IRU_INTAKE_DETECTORS_FILE; with IRU_SHARED_STATE_DSN, the detectors every API server shares) and prints the key on standard output. It is shown once and stored nowhere else: put it in the\n" +
			"detector's configuration now. Later keys come from `starter keys rotate-intake`.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, closeStore, err := detectorStore(cmd.Context(), file)
			if err != nil {
				return err
			}
			defer closeStore()
			keyID, key, err := addDetector(cmd.Context(), store, args[0], format, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: the API key of detector %q (key id %s) follows on standard output.\n"+
				"It is shown this once and stored nowhere else: put it in the detector's configuration now\n"+
				"(header %s or Authorization: Bearer). Restart the API server for it to serve a new detector.\n",
				args[0], keyID, auth.HeaderKey)
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "payload format of the detector: alertmanager, falco, wazuh or generic")
	cmd.Flags().StringVar(&file, "file", "", "detectors file (default: IRU_INTAKE_DETECTORS_FILE)")
	_ = cmd.MarkFlagRequired("format")
	return cmd
}

// addDetector adds detector name with one new API key to the detectors
// file and returns the key's id and the key.
func addDetector(ctx context.Context, store detectorsfile.Store, name, format string, now time.Time) (keyID, key string, err error) {
	if _, err := parse.ForFormat(format); err != nil {
		return "", "", &exitError{code: 2, err: fmt.Errorf("--format: %w", err)}
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", "", fmt.Errorf("add detector: %w", err)
	}
	keyID = "k" + now.UTC().Format("20060102") + "-" + hex.EncodeToString(rnd[:])
	if key, err = auth.GenerateKey(); err != nil {
		return "", "", fmt.Errorf("add detector: %w", err)
	}
	err = store.Update(ctx, func(f *detectorsfile.File) (bool, error) {
		if f.Detector(name) >= 0 {
			return false, fmt.Errorf("detector %q is already in %s; rotate its keys with `starter keys rotate-intake --source %s`", name, store, name)
		}
		f.Detectors = append(f.Detectors, auth.Detector{Name: name, Format: format, APIKeys: []auth.APIKey{
			{ID: keyID, SHA256: auth.HashKey(keyID, key), NotBefore: now.UTC().Truncate(time.Second)},
		}})
		return true, nil
	})
	if err != nil {
		return "", "", fmt.Errorf("add detector %q: %w", name, err)
	}
	return keyID, key, nil
}

// formatDays renders a whole number of days as "90 days".
func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

func newKeysImportDetectorsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import-detectors FILE",
		Short: "Copy the detectors of a detectors file into the shared store (IRU_SHARED_STATE_DSN)",
		Long: "Moves a single host's detectors to the store every API server shares: the detectors of FILE that the\n" +
			"store does not hold yet are added (with their key hashes, HMAC secrets and scopes); a detector the store\n" +
			"already holds is left as it is. Then unset IRU_INTAKE_DETECTORS_FILE on the API servers and the worker.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg keysFileConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			if !cfg.Shared.Enabled() {
				return &exitError{code: 2, err: errors.New("IRU_SHARED_STATE_DSN is not set")}
			}
			st, err := sharedstate.Open(cmd.Context(), cfg.Shared, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			added, err := importDetectors(cmd.Context(), st, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d detector(s) added to %s\n", added, st)
			return nil
		},
	}
}

// importDetectors adds the detectors of the file at path that store lacks.
func importDetectors(ctx context.Context, store detectorsfile.Store, path string) (int, error) {
	in, err := detectorsfile.Load(path)
	if err != nil {
		return 0, err
	}
	added := 0
	err = store.Update(ctx, func(f *detectorsfile.File) (bool, error) {
		for _, d := range in.Detectors {
			if f.Detector(d.Name) < 0 {
				f.Detectors = append(f.Detectors, d)
				added++
			}
		}
		return added > 0, nil
	})
	if err != nil {
		return 0, fmt.Errorf("import detectors from %s: %w", path, err)
	}
	return added, nil
}
