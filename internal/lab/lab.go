// Package lab runs the platform's lab: faithful simulators of Proxmox VE
// (package pve) and Keycloak (package keycloak) on their usual ports, with
// fixed, documented lab credentials. It is imported by tests and by
// `starter lab` / `starter up` only, never by platform code: the platform
// reaches the lab through the same configuration (URLs, tokens, secrets)
// it would use for real servers.
package lab

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/lab/keycloak"
	"github.com/iru-responder/responder/internal/lab/pve"
)

// Options configure the lab.
type Options struct {
	// PVEAddr and KeycloakAddr are listen addresses (port 0: a free port).
	// Empty: the simulators' defaults, 127.0.0.1:8006 and 127.0.0.1:8180.
	PVEAddr      string
	KeycloakAddr string
	// PVETaskDuration is how long simulated PVE tasks run (0: the default).
	PVETaskDuration time.Duration
	// PVETaskDurations overrides it per task type (e.g. "vzsnapshot").
	PVETaskDurations map[string]time.Duration
	// StateDir receives the PVE certificate (pve-ca.pem) and the env file.
	StateDir string
	// HealthAddr is where the simulated services answer health probes
	// (plain HTTP); empty: 127.0.0.1 on a free port.
	HealthAddr string
	// PVEInventoryPath seeds the PVE simulator from this inventory file
	// instead of its embedded inventory.yaml (e.g. a test's larger fleet).
	PVEInventoryPath string
}

// Lab is a running lab.
type Lab struct {
	PVE      *pve.Server
	Keycloak *keycloak.Server
	// PVECAFile is the PEM file of the PVE simulator's self-signed
	// certificate, for IRU_PVE_CA_FILE.
	PVECAFile string

	health *http.Server
	// healthURL is the base URL of the simulated services' health endpoints.
	healthURL string
}

// Start starts both simulators and writes the PVE certificate to StateDir.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	if opts.StateDir == "" {
		return nil, errors.New("lab: StateDir is required")
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	p, err := pve.New(pve.Options{Addr: opts.PVEAddr, TaskDuration: opts.PVETaskDuration, TaskDurations: opts.PVETaskDurations,
		InventoryPath: opts.PVEInventoryPath})
	if err != nil {
		return nil, fmt.Errorf("lab: pve: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		return nil, fmt.Errorf("lab: pve: %w", err)
	}
	k, err := keycloak.New(keycloak.Options{Addr: opts.KeycloakAddr})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("lab: keycloak: %w", err)
	}
	if err := k.Start(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("lab: keycloak: %w", err)
	}
	l := &Lab{PVE: p, Keycloak: k, PVECAFile: filepath.Join(opts.StateDir, "pve-ca.pem")}
	if err := writePeerCert(ctx, p.Addr(), l.PVECAFile); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.serveHealth(opts.HealthAddr); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serveHealth answers health probes of the simulated services: a
// container's service is up while the container runs. Probes reach it
// from the management network, which isolation keeps open.
func (l *Lab) serveHealth(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("lab: health listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ct/{id}/health", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		for _, ct := range l.PVE.State().Containers {
			if strconv.Itoa(ct.VMID) != id && ct.Config["hostname"] != id {
				continue
			}
			w.Header().Set("Content-Type", "application/json")
			if ct.Status != "running" {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, `{"status":"down","ct":%d}`+"\n", ct.VMID)
				return
			}
			fmt.Fprintf(w, `{"status":"ok","ct":%d}`+"\n", ct.VMID)
			return
		}
		http.Error(w, "no such container", http.StatusNotFound)
	})
	l.health = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	l.healthURL = "http://" + ln.Addr().String()
	go func() { _ = l.health.Serve(ln) }()
	return nil
}

// HealthURL returns the health endpoint of the simulated service in the
// container with this hostname or vmid, as a detector would label it.
func (l *Lab) HealthURL(ct string) string { return l.healthURL + "/ct/" + ct + "/health" }

// writePeerCert saves the certificate a TLS server presents, as an operator
// would pin a Proxmox node's self-signed certificate.
func writePeerCert(ctx context.Context, addr, path string) error {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // fetching the cert to pin it
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("lab: fetch pve certificate: %w", err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return errors.New("lab: pve presented no certificate")
	}
	var b strings.Builder
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// Env returns the platform's configuration for this lab, as KEY=VALUE
// lines: the same variables a real deployment sets for its Proxmox VE and
// Keycloak.
func (l *Lab) Env() []string {
	kc := l.Keycloak.URL()
	return []string{
		"IRU_PVE_URL=" + l.PVE.URL(),
		"IRU_PVE_TOKEN_ID=" + pve.LabResponderTokenID,
		"IRU_PVE_TOKEN_SECRET=" + pve.LabResponderTokenSecret,
		"IRU_PVE_CA_FILE=" + l.PVECAFile,
		"IRU_KEYCLOAK_URL=" + kc,
		"IRU_KEYCLOAK_REALM=" + keycloak.Realm,
		"IRU_KEYCLOAK_CLIENT_ID=" + keycloak.WorkerClientID,
		"IRU_KEYCLOAK_CLIENT_SECRET=" + keycloak.WorkerClientSecret,
		"IRU_OIDC_ISSUER=" + kc + "/realms/" + keycloak.Realm,
		"IRU_OIDC_AUDIENCE=" + keycloak.APIClientID,
		"IRU_PROBE_TARGETS=" + l.probeTargets(),
		"IRU_OIDC_CLIENT_ID=" + keycloak.APIClientID,
		"IRU_OIDC_CLIENT_SECRET=" + keycloak.APIClientSecret,
	}
}

// probeTargets is the probe allow-list of the lab: each simulated
// container's service answers on the lab's health listener (the
// containers' own addresses are not routable).
func (l *Lab) probeTargets() string {
	var out []string
	for _, ct := range l.PVE.State().Containers {
		if name := ct.Config["hostname"]; name != "" {
			out = append(out, name+"="+l.HealthURL(name))
		}
	}
	return strings.Join(out, ",")
}

// Credentials describes the lab's fixed credentials for people.
func (l *Lab) Credentials() string {
	return fmt.Sprintf(`Proxmox VE (simulated)  %s
  API token     %s = %s
  read-only     %s = %s
  root login    %s / %s
  lab control   %s (Bearer %s)
Keycloak (simulated)    %s
  admin         %s / %s (realm %s)
  responders    alice (ir-responder), bob (ir-responder, ir-lead), carol (ir-admin, ir-lead); password %s
  TOTP seeds    bob %s, carol %s (RFC 6238, SHA-1, 6 digits, 30 s; ir-lead and ir-admin must
                send the code: starter login prompts for it, starter lab totp USER prints it)
  users         jdoe (the demo's compromised account), asmith; password %s
  worker client %s / %s
  operator      %s / %s (Temporal permissions temporal-system:admin, default:admin)
  console       %s (public, direct access grants: starter login)
`,
		l.PVE.URL(), pve.LabResponderTokenID, pve.LabResponderTokenSecret, pve.LabAuditTokenID, pve.LabAuditTokenSecret,
		pve.LabRootUser, pve.LabRootPassword, l.PVE.ControlURL(), pve.LabControlToken,
		l.Keycloak.URL(), keycloak.AdminUsername, keycloak.AdminPassword, keycloak.MasterRealm,
		keycloak.UserPassword, keycloak.LabTOTPSeeds["bob"], keycloak.LabTOTPSeeds["carol"],
		keycloak.UserPassword, keycloak.WorkerClientID, keycloak.WorkerClientSecret,
		keycloak.OperatorClientID, keycloak.OperatorClientSecret, keycloak.ConsoleClientID)
}

// Close stops both simulators.
func (l *Lab) Close() {
	if l.health != nil {
		_ = l.health.Close()
	}
	l.PVE.Close()
	l.Keycloak.Close()
}

// Ready reports whether both simulators accept connections.
func (l *Lab) Ready(ctx context.Context) error {
	var d net.Dialer
	for _, a := range []string{l.PVE.Addr(), hostOf(l.Keycloak.URL())} {
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return fmt.Errorf("lab: %s: %w", a, err)
		}
		c.Close()
	}
	return nil
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host
}
