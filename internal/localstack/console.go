//go:build localstack

package localstack

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/Nerzal/gocloak/v13"

	"github.com/iru-responder/responder/internal/lab/keycloak"
)

// consoleURL returns where the stack's API server serves the browser
// console, and registers it at the lab Keycloak's console client as an
// operator would (its redirect URIs). The console runs on the API
// server's own listener: plain http, which browsers treat as secure on
// the loopback address only, so a stack listening elsewhere, or without
// the lab, or whose operator set IRU_CONSOLE_URL, is left as configured.
func (s *stack) consoleURL(ctx context.Context) (string, error) {
	if s.lab == nil || os.Getenv("IRU_CONSOLE_URL") != "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(s.cfg.APIAddr)
	if err != nil || port == "0" {
		return "", nil
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		host = "127.0.0.1"
	case host != "localhost" && (ip == nil || !ip.IsLoopback()):
		s.say("console not served: IRU_API_ADDR=%s is not a loopback address (set IRU_CONSOLE_URL with TLS)", s.cfg.APIAddr)
		return "", nil
	}
	base := "http://" + net.JoinHostPort(host, port) + "/console"
	if err := registerConsole(ctx, s.lab.Keycloak.URL(), base); err != nil {
		return "", fmt.Errorf("register the console at the lab Keycloak: %w", err)
	}
	return base, nil
}

// registerConsole adds base/* to the redirect URIs of the realm's console
// client, through Keycloak's admin API.
func registerConsole(ctx context.Context, kcURL, base string) error {
	gc := gocloak.NewClient(kcURL)
	admin, err := gc.LoginAdmin(ctx, keycloak.AdminUsername, keycloak.AdminPassword, keycloak.MasterRealm)
	if err != nil {
		return err
	}
	clients, err := gc.GetClients(ctx, admin.AccessToken, keycloak.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(keycloak.ConsoleClientID)})
	if err != nil {
		return err
	}
	if len(clients) != 1 {
		return fmt.Errorf("%d clients %s in realm %s", len(clients), keycloak.ConsoleClientID, keycloak.Realm)
	}
	c := clients[0]
	var uris []string
	if c.RedirectURIs != nil {
		uris = *c.RedirectURIs
	}
	if slices.Contains(uris, base+"/*") {
		return nil
	}
	uris = append(uris, base+"/*")
	c.RedirectURIs = &uris
	return gc.UpdateClient(ctx, admin.AccessToken, keycloak.Realm, *c)
}
