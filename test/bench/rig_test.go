//go:build integration

package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	pveact "github.com/iru-responder/responder/activities/proxmox"
	"github.com/iru-responder/responder/internal/config"
	"github.com/iru-responder/responder/internal/intake"
	"github.com/iru-responder/responder/internal/intake/auth"
	"github.com/iru-responder/responder/internal/intake/forward"
	"github.com/iru-responder/responder/internal/intake/inventory"
	"github.com/iru-responder/responder/internal/keys/hsmtest"
	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/lab/pve"
	"github.com/iru-responder/responder/internal/testenv"
	"github.com/iru-responder/responder/internal/workerhost"
)

// inventoryFile is the lab inventory with 100 containers bench-0 … bench-99
// (vmid 1000 … 1099).
const inventoryFile = "testdata/inventory100.yaml"

// inventorySize is how many containers inventoryFile holds.
const inventorySize = 100

// asset names container i of inventoryFile.
func asset(i int) string { return fmt.Sprintf("bench-%d", i) }

// vmid is container i's vmid in inventoryFile.
func vmid(i int) int { return 1000 + i }

// benchUser is the Keycloak account seen in container i.
func benchUser(i int) string { return fmt.Sprintf("bench-user-%d", i) }

// rigOptions configure [newRig].
type rigOptions struct {
	// Users is how many accounts bench-user-0 … are added to realm iru.
	Users int
	// TaskDurations overrides the PVE task durations per type; every other
	// task takes the simulator's default (50 ms).
	TaskDurations map[string]time.Duration
	// PlaybooksDir, if set, is the worker's IRU_PLAYBOOKS_DIR.
	PlaybooksDir string
	// Target is the Temporal server (nil: testenv.Current).
	Target testenv.Target
}

// rig is a whole platform for a benchmark: the lab simulators started here
// (PVE with the 100-container inventory, Keycloak with extra users), a
// worker host configured from environment variables exactly as
// testplatform.New does, a codec client (as the API server) and a worker
// (as itself) on a fresh task queue of the target: the package's dev
// server or the real cluster (package testenv).
type rig struct {
	PVE       *pve.Server
	Keycloak  *keycloak.Server
	Host      *workerhost.Host
	Client    client.Client
	TaskQueue string
	// Config is the worker configuration the host was built from.
	Config workerhost.Config
}

// newRig builds a rig; everything stops when tb ends.
func newRig(tb testing.TB, opts rigOptions) *rig {
	tb.Helper()
	target := opts.Target
	if target == nil {
		target = testenv.Current(tb)
	}
	hsm := hsmtest.Config(tb)
	state := tb.TempDir()
	ctx := context.Background()

	p, err := pve.New(pve.Options{Addr: "127.0.0.1:0", InventoryPath: inventoryFile, TaskDurations: opts.TaskDurations})
	if err != nil {
		tb.Fatalf("pve simulator: %v", err)
	}
	if err := p.Start(ctx); err != nil {
		tb.Fatalf("pve simulator: %v", err)
	}
	tb.Cleanup(p.Close)
	caFile := filepath.Join(state, "pve-ca.pem")
	if err := writePeerCert(p.Addr(), caFile); err != nil {
		tb.Fatal(err)
	}
	realms, err := benchRealms(opts.Users)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := keycloak.New(keycloak.Options{Addr: "127.0.0.1:0", Realms: realms})
	if err != nil {
		tb.Fatalf("keycloak simulator: %v", err)
	}
	if err := k.Start(ctx); err != nil {
		tb.Fatalf("keycloak simulator: %v", err)
	}
	tb.Cleanup(k.Close)

	keyDir := filepath.Join(state, "codec-keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	kc := k.URL()
	env := []string{
		"IRU_PVE_URL=" + p.URL(),
		"IRU_PVE_TOKEN_ID=" + pve.LabResponderTokenID,
		"IRU_PVE_TOKEN_SECRET=" + pve.LabResponderTokenSecret,
		"IRU_PVE_CA_FILE=" + caFile,
		"IRU_PVE_TASK_POLL=100ms",
		"IRU_PVE_ALLOW_CIDRS=10.10.0.0/24",
		"IRU_KEYCLOAK_URL=" + kc,
		"IRU_KEYCLOAK_REALM=" + keycloak.Realm,
		"IRU_KEYCLOAK_CLIENT_ID=" + keycloak.WorkerClientID,
		"IRU_KEYCLOAK_CLIENT_SECRET=" + keycloak.WorkerClientSecret,
		"IRU_OIDC_ISSUER=" + kc + "/realms/" + keycloak.Realm,
		"IRU_OIDC_AUDIENCE=" + keycloak.APIClientID,
		"IRU_HSM_MODULE=" + hsm.Module, "IRU_HSM_TOKEN_LABEL=" + hsm.TokenLabel, "IRU_HSM_PIN=" + hsm.PIN,
		"SOFTHSM2_CONF=" + os.Getenv("SOFTHSM2_CONF"),
		"IRU_CODEC_KEY_DIR=" + keyDir,
		"IRU_LEDGER_SQLITE_PATH=" + filepath.Join(state, "ledger.db"),
		"IRU_EVIDENCE_DIR=" + filepath.Join(state, "evidence"),
		"IRU_SECRETS_DIR=" + filepath.Join(state, "secrets"),
	}
	env = append(env, target.Env(testenv.RoleWorker)...)
	if opts.PlaybooksDir != "" {
		env = append(env, "IRU_PLAYBOOKS_DIR="+opts.PlaybooksDir)
	}
	var cfg workerhost.Config
	if err := config.LoadFrom(&cfg, env); err != nil {
		tb.Fatalf("worker configuration: %v", err)
	}
	host, err := workerhost.Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("worker host: %v", err)
	}
	tb.Cleanup(host.Close)
	// The SDK logs every activity at debug level; the benchmarks keep
	// the machine's time for the work they measure.
	quiet := log.NewStructuredLogger(slog.New(slog.DiscardHandler))
	copts := client.Options{DataConverter: host.DataConverter(), Logger: quiet}
	c := testenv.Dial(tb, target, testenv.RoleAPI, copts)
	wc := c
	if target.Name() != "dev" {
		wc = testenv.Dial(tb, target, testenv.RoleWorker, copts)
	}
	tq := "bench-" + uuid.NewString()
	testenv.Worker(tb, wc, tq, func(r worker.Registry) { host.Register(r, wc) })
	return &rig{PVE: p, Keycloak: k, Host: host, Client: c, TaskQueue: tq, Config: cfg}
}

// writePeerCert saves the certificate the PVE simulator presents, as an
// operator pins a node's self-signed certificate.
func writePeerCert(addr, path string) error {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // fetching the lab certificate to pin it
	if err != nil {
		return fmt.Errorf("fetch pve certificate: %w", err)
	}
	defer conn.Close()
	var out []byte
	for _, c := range conn.ConnectionState().PeerCertificates {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("write pve certificate: %w", err)
	}
	return nil
}

// benchRealms returns the lab's realm exports (copied in testdata/realms)
// with n accounts bench-user-0 … added to realm iru, password
// keycloak.UserPassword.
func benchRealms(n int) ([][]byte, error) {
	master, err := os.ReadFile("testdata/realms/master.json")
	if err != nil {
		return nil, fmt.Errorf("read master realm: %w", err)
	}
	raw, err := os.ReadFile("testdata/realms/iru.json")
	if err != nil {
		return nil, fmt.Errorf("read iru realm: %w", err)
	}
	var iru map[string]any
	if err := json.Unmarshal(raw, &iru); err != nil {
		return nil, fmt.Errorf("decode iru realm: %w", err)
	}
	users, _ := iru["users"].([]any)
	for i := range n {
		users = append(users, map[string]any{
			"id":               fmt.Sprintf("7b3e0000-0000-4000-8000-%012d", i),
			"username":         benchUser(i),
			"email":            benchUser(i) + "@iru.example",
			"enabled":          true,
			"emailVerified":    true,
			"createdTimestamp": 1704067200000,
			"credentials":      []any{map[string]any{"type": "password", "value": keycloak.UserPassword, "temporary": false}},
			"realmRoles":       []any{"default-roles-iru"},
		})
	}
	iru["users"] = users
	out, err := json.Marshal(iru)
	if err != nil {
		return nil, fmt.Errorf("encode iru realm: %w", err)
	}
	return [][]byte{master, out}, nil
}

// loginUsers gives each of the first n bench users a live session (a
// password login through the console client), as the compromised accounts
// have when the alerts arrive.
func (r *rig) loginUsers(tb testing.TB, n int) {
	tb.Helper()
	gc := gocloak.NewClient(r.Keycloak.URL())
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := gc.Login(context.Background(), keycloak.ConsoleClientID, "", keycloak.Realm, benchUser(i), keycloak.UserPassword); err != nil {
				tb.Errorf("login %s: %v", benchUser(i), err)
			}
		})
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
}

// setLatency makes every PVE and Keycloak API call take at least d more
// (0 clears the faults).
func (r *rig) setLatency(tb testing.TB, d time.Duration) {
	tb.Helper()
	if d <= 0 {
		r.PVE.SetFaults()
		if err := r.Keycloak.SetFaults(nil); err != nil {
			tb.Fatal(err)
		}
		return
	}
	r.PVE.SetFaults(pve.Fault{Latency: d})
	if err := r.Keycloak.SetFaults([]keycloak.Fault{{LatencyMS: d.Milliseconds()}}); err != nil {
		tb.Fatal(err)
	}
}

// benchKey is the API key of the benchmark's detector.
const benchKey = "bench-detector-key-0123456789"

// intakeRig is the real detector intake in front of a rig: handler, spool
// and forwarder on the rig's client, served over HTTP, with each request's
// handler time recorded.
type intakeRig struct {
	URL     string
	Service *intake.Service

	mu  sync.Mutex
	lat []time.Duration
}

// openIntake opens the intake with one API-key detector "generic" (generic
// JSON format); rulesFile "" uses the shipped routing rules. Incidents
// start on the rig's task queue. The inventory is read from the PVE
// simulator before openIntake returns.
func (r *rig) openIntake(tb testing.TB, rulesFile string) *intakeRig {
	tb.Helper()
	inv, err := pveact.NewInventory(r.Config.PVE)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := intake.Config{
		SpoolDir:         tb.TempDir(),
		RulesFile:        rulesFile,
		TaskQueue:        r.TaskQueue,
		InventoryRefresh: time.Hour,
		Detectors: []auth.Detector{{Name: "generic", Format: "generic",
			APIKeys: []auth.APIKey{{ID: "bench", SHA256: auth.HashKey("bench", benchKey)}}}},
		// A load test: one loopback source posts faster than the intake's
		// default per-source and per-detector limits allow.
		Limits: intake.LimitsConfig{SourceRate: 1e6, SourceBurst: 1e6, SourceConcurrency: 1e6, DetectorRate: 1e6,
			DetectorBurst: 1e6, DetectorConc: 1e6, MaxSources: 100, SourceIdle: time.Minute},
	}
	svc, err := intake.Open(cfg, intake.Deps{Assets: pveAssets{inv}, Signaler: forward.TemporalSignaler{Client: r.Client}})
	if err != nil {
		tb.Fatalf("open intake: %v", err)
	}
	if err := svc.Inventory.Refresh(context.Background()); err != nil {
		tb.Fatalf("intake inventory: %v", err)
	}
	ir := &intakeRig{Service: svc}
	mux := http.NewServeMux()
	mux.Handle(intake.Pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		t0 := time.Now()
		svc.Handler.ServeHTTP(w, req)
		d := time.Since(t0)
		ir.mu.Lock()
		ir.lat = append(ir.lat, d)
		ir.mu.Unlock()
	}))
	srv := httptest.NewServer(mux)
	ir.URL = srv.URL + "/v1/alerts/generic"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	tb.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("intake: %v", err)
		}
		if err := svc.Close(); err != nil {
			tb.Errorf("intake spool: %v", err)
		}
	})
	return ir
}

// latencies returns the recorded handler times, sorted.
func (ir *intakeRig) latencies() []time.Duration {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	out := slices.Clone(ir.lat)
	slices.Sort(out)
	return out
}

// waitDrained waits until the forwarder delivered every spooled alert.
func (ir *intakeRig) waitDrained(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for ir.Service.Spool.Stats().Pending > 0 {
		if time.Now().After(deadline) {
			tb.Fatalf("intake spool not drained after %s: %+v", timeout, ir.Service.Spool.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pveAssets is the intake's asset inventory over Proxmox VE, as the API
// server builds it (starter serve).
type pveAssets struct{ inv *pveact.Activities }

// Assets implements inventory.Source.
func (p pveAssets) Assets(ctx context.Context) ([]inventory.Asset, error) {
	cts, err := p.inv.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]inventory.Asset, 0, len(cts))
	for _, ct := range cts {
		out = append(out, inventory.Asset{Name: ct.Name, Node: ct.Node, VMID: ct.VMID, IPs: ct.IPs, Tags: ct.Tags})
	}
	return out, nil
}

// genericAlert is one alert in the generic JSON format.
type genericAlert struct {
	Source     string            `json:"source"`
	Rule       string            `json:"rule"`
	Severity   string            `json:"severity"`
	Asset      string            `json:"asset"`
	Summary    string            `json:"summary"`
	Labels     map[string]string `json:"labels,omitempty"`
	ObservedAt string            `json:"observed_at"`
}

// percentile returns the p-th percentile (0..100) of sorted durations
// (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ms renders a duration in milliseconds for metrics.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
