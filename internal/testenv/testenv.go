// Package testenv gives tests real infrastructure: one Temporal dev server
// per test binary, started from the pinned CLI on free ports and stopped
// when the tests end, or (IRU_TEST_TARGET=cluster, or [Cluster]) one real
// Temporal cluster on PostgreSQL with mTLS and authorization. A missing
// binary fails the test; it never skips.
//
// A test package that uses it calls [Main] from its TestMain.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/devserver"
	"github.com/iru-responder/responder/internal/gctune"
	"github.com/iru-responder/responder/workflows"
)

var (
	once   sync.Once
	server *devserver.Server
	logf   *os.File
	err    error
)

// Main runs the tests of a package and stops the shared dev server after.
// When benchmarks run, the platform's logs go to a file (see logToFile),
// whose name is printed after the results.
func Main(m *testing.M) {
	flag.Parse()
	var benchLog *os.File
	if benchmarking() {
		// The platform runs in this process as in the worker: under a
		// memory limit (GOMEMLIMIT, as make bench sets it) with the
		// worker's collector setting.
		fmt.Fprintf(os.Stderr, "collector: %s\n", gctune.Apply())
		var err error
		if benchLog, err = logToFile(os.TempDir()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	code := m.Run()
	if benchLog != nil {
		_ = benchLog.Close()
		if fi, err := os.Stat(benchLog.Name()); err == nil && fi.Size() == 0 {
			_ = os.Remove(benchLog.Name())
		} else {
			fmt.Fprintf(os.Stderr, "platform log: %s\n", benchLog.Name())
		}
	}
	stopCluster(code != 0)
	if server != nil {
		_ = server.Stop()
	}
	if logf != nil {
		_ = logf.Close()
		if code == 0 {
			_ = os.Remove(logf.Name())
		} else {
			fmt.Fprintf(os.Stderr, "dev server log: %s\n", logf.Name())
		}
	}
	os.Exit(code)
}

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// TemporalCLI returns the path of the pinned Temporal CLI: IRU_TEMPORAL_CLI,
// or .tools/bin/temporal in the repository.
func TemporalCLI() (string, error) {
	if p := os.Getenv("IRU_TEMPORAL_CLI"); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools", "bin", "temporal"), nil
}

// Temporal returns the package's shared dev server, starting it on first use.
func Temporal(tb testing.TB) *devserver.Server {
	tb.Helper()
	once.Do(func() {
		var bin string
		if bin, err = TemporalCLI(); err != nil {
			return
		}
		logf, err = os.CreateTemp("", "iru-devserver-*.log")
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		server, err = devserver.Start(ctx, devserver.Options{
			Binary:           bin,
			SearchAttributes: workflows.SearchAttributeFlags(),
			Log:              logf,
		})
	})
	if err != nil {
		tb.Fatalf("testenv: Temporal dev server: %v", err)
	}
	return server
}

// Client dials the current target ([Current]) with opts (connection
// settings are filled in; on the cluster it acts as the API server) and
// closes the client when the test ends.
func Client(tb testing.TB, opts client.Options) client.Client {
	tb.Helper()
	return Dial(tb, Current(tb), RoleAPI, opts)
}

// Worker starts a worker on taskQueue with the registrations made by
// register, and stops it when the test ends.
func Worker(tb testing.TB, c client.Client, taskQueue string, register func(worker.Registry)) worker.Worker {
	tb.Helper()
	return StartWorker(tb, func() worker.Worker {
		w := worker.New(c, taskQueue, worker.Options{})
		register(w)
		return w
	})
}

// startAttempts bounds [StartWorker]'s tries.
const startAttempts = 4

// StartWorker starts the worker newWorker builds, and stops it when the test
// ends. A worker's start asks the server for its namespace with the SDK's
// 10-second RPC timeout; a dev server shared by a package's tests on a
// loaded 2-core machine can miss that, so a start that failed reaching the
// server is tried again with a new worker (a worker's start runs once), up to
// four times. Any other error fails the test at once.
func StartWorker(tb testing.TB, newWorker func() worker.Worker) worker.Worker {
	tb.Helper()
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		w := newWorker()
		if err = w.Start(); err == nil {
			tb.Cleanup(w.Stop)
			return w
		}
		if !strings.Contains(err.Error(), "failed reaching server") {
			break
		}
		tb.Logf("testenv: start worker (attempt %d of %d): %v", attempt, startAttempts, err)
		time.Sleep(time.Duration(attempt) * time.Second)
	}
	tb.Fatalf("testenv: start worker: %v", err)
	return nil
}
