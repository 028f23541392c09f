package testenv

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// TestLogToFileKeepsStderrClean logs through slog and the log package, as
// the platform's packages do, after logToFile: both lines must be in the
// file and nothing on stderr (where it would split a benchmark's result
// line).
func TestLogToFileKeepsStderrClean(t *testing.T) {
	oldSlog, oldStderr := slog.Default(), os.Stderr
	t.Cleanup(func() { slog.SetDefault(oldSlog); os.Stderr = oldStderr })
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stderr = w
	flags := log.Flags()
	log.SetOutput(w) // what the log package writes to before SetDefault
	t.Cleanup(func() { log.SetOutput(oldStderr); log.SetFlags(flags) })

	f, err := logToFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	slog.Warn("controls: a control's playbook is not loaded")
	log.Printf("legacy line")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stderr, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(stderr) > 0 {
		t.Errorf("stderr got %q, want nothing", stderr)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"playbook is not loaded", "legacy line"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("log file %s lacks %q:\n%s", f.Name(), want, got)
		}
	}
	if n := strings.Count(string(got), "\n"); n != 2 {
		t.Errorf("log file has %d lines, want 2", n)
	}
}
