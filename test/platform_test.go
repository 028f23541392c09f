package test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/lab"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
)

// platform is a whole platform for one test: the lab, a real worker host
// configured exactly as the worker binary would be (from environment
// variables), and a client with the payload codec, on its own task queue
// of the shared dev server.
type platform struct {
	Lab       *lab.Lab
	Host      *workerhost.Host
	Client    client.Client
	TaskQueue string
	State     string
}

type platformOptions struct {
	taskDurations map[string]time.Duration
	// plain uses the SDK's default data converter instead of the codec
	// (for recording histories that a replay test can read without keys).
	plain bool
	// env adds or overrides worker configuration variables.
	env []string
}

func newPlatform(t testing.TB, opts platformOptions) *platform {
	t.Helper()
	dev := testenv.Temporal(t)
	hsm := hsmtest.Config(t)
	state := t.TempDir()
	keyDir := filepath.Join(state, "codec-keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Options{PVEAddr: "127.0.0.1:0", KeycloakAddr: "127.0.0.1:0", StateDir: state,
		PVETaskDuration: 20 * time.Millisecond, PVETaskDurations: opts.taskDurations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	env := append(l.Env(),
		"IRU_TEMPORAL_ADDRESS="+dev.Address(),
		"IRU_HSM_MODULE="+hsm.Module, "IRU_HSM_TOKEN_LABEL="+hsm.TokenLabel, "IRU_HSM_PIN="+hsm.PIN,
		"IRU_CODEC_KEY_DIR="+keyDir,
		"IRU_LEDGER_SQLITE_PATH="+filepath.Join(state, "ledger.db"),
		"IRU_EVIDENCE_DIR="+filepath.Join(state, "evidence"),
		"IRU_SECRETS_DIR="+filepath.Join(state, "secrets"),
		"IRU_PVE_TASK_POLL=20ms",
		"IRU_PVE_ALLOW_CIDRS=10.10.0.0/24",
	)
	env = append(env, opts.env...)
	var cfg workerhost.Config
	if err := config.LoadFrom(&cfg, env); err != nil {
		t.Fatal(err)
	}
	host, err := workerhost.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
	copts := client.Options{DataConverter: host.DataConverter()}
	if opts.plain {
		copts.DataConverter = nil
	}
	c := testenv.Client(t, copts)
	tq := "it-" + uuid.NewString()
	testenv.Worker(t, c, tq, func(r worker.Registry) { host.Register(r, c) })
	return &platform{Lab: l, Host: host, Client: c, TaskQueue: tq, State: state}
}
