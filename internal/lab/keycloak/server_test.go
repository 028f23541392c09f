package keycloak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
)

func TestStartListensAndCloses(t *testing.T) {
	srv, err := New(Options{Addr: "127.0.0.1:0", KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") || strings.HasSuffix(srv.URL(), ":0") {
		t.Fatalf("URL = %q", srv.URL())
	}
	gc := gocloak.NewClient(srv.URL())
	tok, err := gc.LoginAdmin(ctx, AdminUsername, AdminPassword, MasterRealm)
	if err != nil {
		t.Fatalf("LoginAdmin through Start: %v", err)
	}
	if err := srv.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	cancel() // ctx cancellation closes the server
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := gc.GetRealm(context.Background(), tok.AccessToken, Realm)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server still serving after ctx cancel")
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Close() // idempotent
}

func TestFaultInjection(t *testing.T) {
	l := newLab(t)
	tokenPath := "/realms/iru/protocol/openid-connect/token"
	t.Run("lab endpoint error status, limited times", func(t *testing.T) {
		resp, body := l.do(http.MethodPut, "/_lab/faults", "", strings.NewReader(
			`{"faults":[{"method":"POST","path":"`+tokenPath+`","status":503,"times":2}]}`), "Content-Type", "application/json")
		if resp.StatusCode != 204 || body != "" {
			t.Fatalf("PUT faults: %d %s", resp.StatusCode, body)
		}
		for i := 0; i < 2; i++ {
			_, err := l.gc.LoginClient(l.ctx, WorkerClientID, WorkerClientSecret, Realm)
			apiErr(t, err, 503, "unknown_error")
		}
		if _, err := l.gc.LoginClient(l.ctx, WorkerClientID, WorkerClientSecret, Realm); err != nil {
			t.Fatalf("login after the fault ran out: %v", err)
		}
		resp, body = l.do(http.MethodGet, "/_lab/faults", "", nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `"status":503`) {
			t.Fatalf("GET faults: %s", body)
		}
	})
	t.Run("prefix match and latency", func(t *testing.T) {
		if err := l.srv.SetFaults([]Fault{{Path: "/admin/*", LatencyMS: 150}}); err != nil {
			t.Fatal(err)
		}
		tok := l.workerToken() // not under /admin: no delay
		start := time.Now()
		if _, err := l.gc.GetRealm(l.ctx, tok, Realm); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("admin call took %v, want >= 150ms", d)
		}
	})
	t.Run("hang until the client gives up", func(t *testing.T) {
		if err := l.srv.SetFaults([]Fault{{Path: "/realms/iru/protocol/openid-connect/token/introspect", Hang: true}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(l.ctx, 200*time.Millisecond)
		defer cancel()
		_, err := l.gc.RetrospectToken(ctx, "x", APIClientID, APIClientSecret, Realm)
		if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("hung call returned %v", err)
		}
	})
	t.Run("invalid rules and clearing", func(t *testing.T) {
		if err := l.srv.SetFaults([]Fault{{Status: 200}}); err == nil {
			t.Error("status 200 fault accepted")
		}
		resp, _ := l.do(http.MethodPut, "/_lab/faults", "", strings.NewReader(`{"faults":[{"errorRate":2,"status":500}]}`))
		if resp.StatusCode != 400 {
			t.Errorf("bad rate accepted: %d", resp.StatusCode)
		}
		resp, _ = l.do(http.MethodDelete, "/_lab/faults", "", nil)
		if resp.StatusCode != 204 || len(l.srv.Faults()) != 0 {
			t.Fatalf("DELETE faults: %d, %v", resp.StatusCode, l.srv.Faults())
		}
		if _, err := l.gc.RetrospectToken(l.ctx, "x", APIClientID, APIClientSecret, Realm); err != nil {
			t.Fatalf("introspect after clearing: %v", err)
		}
	})
	t.Run("error rate", func(t *testing.T) {
		if err := l.srv.SetFaults([]Fault{{Path: "/realms/iru", Status: 500, ErrorRate: 0.5}}); err != nil {
			t.Fatal(err)
		}
		fails := 0
		for i := 0; i < 200; i++ {
			if resp, _ := l.do(http.MethodGet, "/realms/iru", "", nil); resp.StatusCode == 500 {
				fails++
			}
		}
		if fails < 50 || fails > 150 {
			t.Errorf("%d of 200 failed at rate 0.5", fails)
		}
		_ = l.srv.SetFaults(nil)
	})
}

// TestConcurrentLoginsAndLogouts runs logins, refreshes, introspections and admin logouts in
// parallel (meaningful under -race) and checks the session store stays consistent.
func TestConcurrentLoginsAndLogouts(t *testing.T) {
	l := newLab(t)
	admin := l.workerToken()
	users := []string{"alice", "bob", "carol", "jdoe", "asmith"}
	ids := map[string]string{}
	for _, u := range users {
		ids[u] = l.userID(u)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				u := users[(w+i)%len(users)]
				tok, err := l.gc.LoginOtp(l.ctx, ConsoleClientID, "", Realm, u, UserPassword, TOTPCode(u, l.clock.Now()))
				if err != nil {
					errs <- fmt.Errorf("login %s: %w", u, err)
					return
				}
				if _, err := l.gc.RetrospectToken(l.ctx, tok.AccessToken, APIClientID, APIClientSecret, Realm); err != nil {
					errs <- fmt.Errorf("introspect: %w", err)
					return
				}
				switch i % 3 {
				case 0:
					err = l.gc.Logout(l.ctx, ConsoleClientID, "", Realm, tok.RefreshToken)
				case 1:
					err = l.gc.LogoutAllSessions(l.ctx, admin, Realm, ids[u])
				default:
					_, err = l.gc.RefreshToken(l.ctx, tok.RefreshToken, ConsoleClientID, "", Realm)
					var ae *gocloak.APIError
					if errors.As(err, &ae) && strings.Contains(ae.Message, "Session not active") {
						err = nil // another worker logged the user out meanwhile
					}
				}
				if err != nil && !strings.Contains(err.Error(), "Session not active") {
					errs <- fmt.Errorf("worker %d step %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, u := range users {
		if err := l.gc.LogoutAllSessions(l.ctx, admin, Realm, ids[u]); err != nil {
			t.Fatal(err)
		}
		if s, err := l.srv.Sessions(Realm, u); err != nil || len(s) != 0 {
			t.Errorf("%s sessions after logout = %v, %v", u, s, err)
		}
	}
}
