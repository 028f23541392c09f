package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/logging"
	"github.com/iru-responder/responder/workflows"
)

func newSelfTestCmd() *cobra.Command {
	var (
		asJSON  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:     "selftest",
		Aliases: []string{"trigger"},
		Short:   "Run the end-to-end self-test workflow on the worker and print its result",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg clientConfig
			if err := config.Load(&cfg); err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c, prot, err := dial(ctx, cfg.Temporal, cfg.Protection, logging.New(io.Discard, cfg.Log, "starter"))
			if err != nil {
				return err
			}
			defer func() { _ = prot.Close() }()
			defer c.Close()
			res, err := runSelfTest(ctx, c)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				printSelfTest(cmd.OutOrStdout(), res)
			}
			if !res.Result.Healthy {
				return &exitError{code: 1, err: fmt.Errorf("selftest: a dependency check failed")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

// selfTestRun is one self-test, as printed.
type selfTestRun struct {
	WorkflowID string
	RunID      string
	Took       time.Duration
	Result     workflows.SelfTestResult
}

func runSelfTest(ctx context.Context, c client.Client) (selfTestRun, error) {
	nonce := uuid.NewString()
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.SelfTestWorkflowID(nonce),
		TaskQueue:                workflows.TaskQueue,
		WorkflowExecutionTimeout: time.Minute,
	}, workflows.SelfTestWorkflow, workflows.SelfTestInput{Nonce: nonce})
	if err != nil {
		return selfTestRun{}, fmt.Errorf("selftest: start workflow: %w", err)
	}
	var res workflows.SelfTestResult
	for {
		err = run.Get(ctx, &res)
		// A long poll the server or a proxy cut (the stream reset, the
		// frontend restarting) says nothing about the workflow: wait again
		// while time is left.
		if pollCut(err) && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			run = c.GetWorkflow(ctx, run.GetID(), run.GetRunID())
			continue
		}
		break
	}
	if err != nil {
		return selfTestRun{}, fmt.Errorf("selftest: workflow %s: %w (is a worker running on task queue %q?)", run.GetID(), err, workflows.TaskQueue)
	}
	return selfTestRun{WorkflowID: run.GetID(), RunID: run.GetRunID(), Took: time.Since(start), Result: res}, nil
}

// pollCut reports whether err is a cut long poll (Canceled or Unavailable
// from the server or the transport), not an answer about the workflow.
func pollCut(err error) bool {
	var canceled *serviceerror.Canceled
	var unavailable *serviceerror.Unavailable
	if errors.As(err, &canceled) || errors.As(err, &unavailable) {
		return true
	}
	code := status.Code(err)
	return code == codes.Canceled || code == codes.Unavailable
}

func printSelfTest(w io.Writer, r selfTestRun) {
	status := "healthy"
	if !r.Result.Healthy {
		status = "UNHEALTHY"
	}
	fmt.Fprintf(w, "selftest %s in %s\n", status, r.Took.Round(time.Millisecond))
	fmt.Fprintf(w, "  workflow  %s\n", r.WorkflowID)
	fmt.Fprintf(w, "  worker    %s (version %s)\n", r.Result.Probe.Worker, r.Result.Probe.Version)
	for _, c := range r.Result.Probe.Checks {
		mark := "ok"
		if !c.OK {
			mark = "FAIL: " + c.Error
		}
		fmt.Fprintf(w, "  %-9s %s\n", c.Name, mark)
	}
}
