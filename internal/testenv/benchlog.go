package testenv

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
)

// benchmarking reports whether the test binary was asked to run
// benchmarks (-test.bench set). Flags must be parsed.
func benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// logToFile sends the platform's logs (slog's default logger, and with it
// the log package's) to a new file in dir and returns it. A benchmark's
// result line is written in two parts, its name before the run and its
// figures after, so a line logged to stderr in between lands inside it
// ("BenchmarkAlertStorm/dev-2 \t2026/12/06 WARN …") and benchstat drops
// that run as malformed.
func logToFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "iru-bench-*.log")
	if err != nil {
		return nil, fmt.Errorf("testenv: benchmark log: %w", err)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(f, nil)))
	return f, nil
}
