package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadWorker(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "apikey")
	if err := os.WriteFile(keyFile, []byte("s3cret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "iru.env")
	if err := os.WriteFile(envFile, []byte("IRU_TEMPORAL_ADDRESS=file-host:7233\nIRU_TEMPORAL_NAMESPACE=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     []string
		check   func(t *testing.T, w Worker)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, w Worker) {
			if w.Temporal.Address != "127.0.0.1:7233" || w.Temporal.Namespace != "default" || w.ShutdownGrace != 30*time.Second || w.WorkflowCacheSize != 10000 {
				t.Errorf("defaults wrong: %+v", w)
			}
			if w.Temporal.UseTLS() {
				t.Error("TLS on by default")
			}
		}},
		{name: "env file, environment wins", env: []string{EnvFileVar + "=" + envFile, "IRU_TEMPORAL_NAMESPACE=from-env"}, check: func(t *testing.T, w Worker) {
			if w.Temporal.Address != "file-host:7233" || w.Temporal.Namespace != "from-env" {
				t.Errorf("got %s %s", w.Temporal.Address, w.Temporal.Namespace)
			}
		}},
		{name: "secret from file implies TLS", env: []string{"IRU_TEMPORAL_API_KEY_FILE=" + keyFile}, check: func(t *testing.T, w Worker) {
			if w.Temporal.APIKey != "s3cret-key" || !w.Temporal.UseTLS() {
				t.Errorf("api key not loaded from file or TLS off")
			}
		}},
		{name: "bad address", env: []string{"IRU_TEMPORAL_ADDRESS=nohostport"}, wantErr: `IRU_TEMPORAL_ADDRESS="nohostport": want host:port`},
		{name: "cert without key", env: []string{"IRU_TEMPORAL_TLS_CERT=" + keyFile}, wantErr: "IRU_TEMPORAL_TLS_CERT and IRU_TEMPORAL_TLS_KEY: set both or neither"},
		{name: "missing CA file", env: []string{"IRU_TEMPORAL_TLS_CA=/nonexistent/ca.pem"}, wantErr: `IRU_TEMPORAL_TLS_CA="/nonexistent/ca.pem": no such file or directory`},
		{name: "bad duration", env: []string{"IRU_WORKER_SHUTDOWN_GRACE=soon"}, wantErr: "IRU_WORKER_SHUTDOWN_GRACE"},
		{name: "workflow cache", env: []string{"IRU_WORKER_WORKFLOW_CACHE=2500"}, check: func(t *testing.T, w Worker) {
			if w.WorkflowCacheSize != 2500 {
				t.Errorf("WorkflowCacheSize = %d, want 2500", w.WorkflowCacheSize)
			}
		}},
		{name: "workflow cache zero", env: []string{"IRU_WORKER_WORKFLOW_CACHE=0"}, wantErr: "IRU_WORKER_WORKFLOW_CACHE=0: want at least 1"},
		{name: "bad log level", env: []string{"IRU_LOG_LEVEL=loud"}, wantErr: `IRU_LOG_LEVEL="loud"`},
		{name: "missing env file", env: []string{EnvFileVar + "=/nonexistent/env"}, wantErr: "IRU_ENV_FILE=/nonexistent/env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Worker
			err := LoadFrom(&w, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, w)
		})
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	var w Worker
	if err := LoadFrom(&w, []string{"IRU_TEMPORAL_API_KEY=topsecret-value"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Join(Redacted(&w), "\n")
	if strings.Contains(lines, "topsecret-value") {
		t.Fatalf("secret printed: %s", lines)
	}
	if !strings.Contains(lines, "IRU_TEMPORAL_API_KEY=(set)") {
		t.Fatalf("secret presence not shown: %s", lines)
	}
	if !strings.Contains(lines, "IRU_TEMPORAL_ADDRESS=127.0.0.1:7233") {
		t.Fatalf("plain value missing: %s", lines)
	}
}
