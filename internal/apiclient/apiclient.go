// Package apiclient is the responder CLI's client of the responder API:
// its configuration, the Keycloak login and the token cache, and requests
// whose error answers become [ErrAuth] or [ErrRefused].
package apiclient

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/fsutil"
	"github.com/iru-responder/responder/internal/tlsutil"
)

var (
	// ErrAuth is an authentication problem: not logged in, the session
	// expired, or the token lacks a role the route needs.
	ErrAuth = errors.New("authentication")
	// ErrRefused is a refusal of the incident workflow's validator (or of
	// the incident's state): wrong role, four-eyes, not pending, already
	// decided, closed.
	ErrRefused = errors.New("refused")
)

// Config configures the responder commands (login, incidents, incident).
type Config struct {
	OIDC      auth.OIDCConfig
	APIURL    string `env:"IRU_API_URL" envDefault:"http://127.0.0.1:8080" doc:"Responder API that starter incidents / incident talk to (http or https)."`
	ClientID  string `env:"IRU_CLI_CLIENT_ID" envDefault:"iru-console" doc:"Public Keycloak client starter login uses (password grant)."`
	CAFile    string `env:"IRU_API_CA" doc:"PEM file of the CA that signs the API server's and Keycloak's HTTPS certificates, for the CLI; system roots when empty."`
	TokenFile string `env:"IRU_TOKEN_FILE" doc:"Token cache of starter login (0600); default ~/.config/iru/token.json."`
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	var p []error
	for name, v := range map[string]string{"IRU_API_URL": c.APIURL, "IRU_OIDC_ISSUER": c.OIDC.IssuerURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p = append(p, fmt.Errorf("%s=%q: want an http(s) URL", name, v))
		}
	}
	if c.ClientID == "" {
		p = append(p, errors.New("IRU_CLI_CLIENT_ID: must not be empty"))
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			p = append(p, fmt.Errorf("IRU_API_CA=%q: %w", c.CAFile, err))
		}
	}
	return errors.Join(p...)
}

// TokenPath is the token cache's path.
func (c *Config) TokenPath() (string, error) {
	if c.TokenFile != "" {
		return c.TokenFile, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("token cache: %w", err)
	}
	return filepath.Join(dir, "iru", "token.json"), nil
}

// HTTPClient is the CLI's HTTP client (the configured CA, a timeout).
func (c *Config) HTTPClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.CAFile != "" {
		pool, err := tlsutil.CertPool(c.CAFile, false)
		if err != nil {
			return nil, fmt.Errorf("IRU_API_CA: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// CachedToken is the token cache file.
type CachedToken struct {
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	Username     string    `json:"username"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

// authErr marks an authentication problem (exit 4).
func authErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrAuth, fmt.Sprintf(format, args...))
}

// oauthConfig discovers the issuer's token endpoint.
func oauthConfig(ctx context.Context, cfg *Config, hc *http.Client) (*oauth2.Config, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, hc), cfg.OIDC.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("identity provider %s: %w", cfg.OIDC.IssuerURL, err)
	}
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams // a public client: no secret
	return &oauth2.Config{ClientID: cfg.ClientID, Endpoint: ep, Scopes: []string{oidc.ScopeOpenID}}, nil
}

// Login runs the password grant and caches the tokens.
func Login(ctx context.Context, cfg *Config, username, password, otp string) (*CachedToken, error) {
	hc, err := cfg.HTTPClient()
	if err != nil {
		return nil, err
	}
	oc, err := oauthConfig(ctx, cfg, hc)
	if err != nil {
		return nil, err
	}
	tok, err := passwordGrant(ctx, hc, oc, username, password, otp)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, authErr("login as %s refused: %s", username, cmp.Or(re.ErrorDescription, re.ErrorCode, re.Response.Status))
		}
		return nil, fmt.Errorf("login: %w", err)
	}
	ct := &CachedToken{Issuer: cfg.OIDC.IssuerURL, ClientID: cfg.ClientID, Username: username,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	if err := SaveToken(cfg, ct); err != nil {
		return nil, err
	}
	return ct, nil
}

// SaveToken writes the cache with mode 0600 in a 0700 folder, atomically.
func SaveToken(cfg *Config, ct *CachedToken) error {
	path, err := cfg.TokenPath()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	b, err := json.MarshalIndent(ct, "", "  ")
	if err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	if err := fsutil.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	return nil
}

// LoadToken returns a valid access token, refreshing (and re-caching) it
// when it expired.
func LoadToken(ctx context.Context, cfg *Config) (string, error) {
	path, err := cfg.TokenPath()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", authErr("not logged in: run `starter login`")
	}
	if err != nil {
		return "", fmt.Errorf("token cache: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", authErr("token cache %s is readable by others (mode %v): delete it and run `starter login`", path, fi.Mode().Perm())
	}
	var ct CachedToken
	if err := json.Unmarshal(b, &ct); err != nil {
		return "", authErr("token cache %s is damaged (%v): run `starter login`", path, err)
	}
	if ct.Issuer != cfg.OIDC.IssuerURL || ct.ClientID != cfg.ClientID {
		return "", authErr("cached login is for %s (client %s), not %s: run `starter login`", ct.Issuer, ct.ClientID, cfg.OIDC.IssuerURL)
	}
	if time.Until(ct.Expiry) > 30*time.Second {
		return ct.AccessToken, nil
	}
	if ct.RefreshToken == "" {
		return "", authErr("session expired: run `starter login`")
	}
	hc, err := cfg.HTTPClient()
	if err != nil {
		return "", err
	}
	oc, err := oauthConfig(ctx, cfg, hc)
	if err != nil {
		return "", err
	}
	// Force the refresh: the cached access token is (nearly) expired.
	tok, err := oc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc), &oauth2.Token{RefreshToken: ct.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return "", authErr("session expired (%s): run `starter login`", cmp.Or(re.ErrorDescription, re.ErrorCode))
		}
		return "", fmt.Errorf("refresh token: %w", err)
	}
	ct.AccessToken, ct.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		ct.RefreshToken = tok.RefreshToken
	}
	if err := SaveToken(cfg, &ct); err != nil {
		return "", err
	}
	return ct.AccessToken, nil
}

// Client talks to the responder API.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// New loads the configuration and the cached token.
func New(ctx context.Context, cfg *Config) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.APIURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("IRU_API_URL: %w", err)
	}
	tok, err := LoadToken(ctx, cfg)
	if err != nil {
		return nil, err
	}
	hc, err := cfg.HTTPClient()
	if err != nil {
		return nil, err
	}
	return &Client{base: base, hc: hc, token: tok}, nil
}

// apiErrorBody is the API's error answer.
type apiErrorBody struct {
	Error string   `json:"error"`
	Code  string   `json:"code"`
	Need  []string `json:"need"`
}

// IncidentPath is the API path of incident id plus rest.
func IncidentPath(id string, rest ...string) string {
	p := "/api/v1/incidents/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// do sends a request; a non-2xx answer becomes an error with the exit
// status of its kind. With out set, the JSON answer is decoded into it;
// otherwise the raw body is returned.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body any, accept string, out any) ([]byte, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	if rp := strings.TrimRight(c.base.EscapedPath(), "/") + path; rp != u.Path {
		u.RawPath = rp
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", cmp.Or(accept, "application/json"))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("responder API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, answerError(resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return raw, nil
}

// answerError turns an error answer into an error with its exit status.
func answerError(status int, raw []byte) error {
	var e apiErrorBody
	_ = json.Unmarshal(raw, &e)
	msg := cmp.Or(e.Error, strings.TrimSpace(string(raw)), http.StatusText(status))
	switch {
	case status == http.StatusUnauthorized:
		return authErr("the API refused the token (%s): run `starter login`", msg)
	case status == http.StatusForbidden && e.Code == "":
		return authErr("forbidden: this needs one of the roles %s", strings.Join(e.Need, ", "))
	case status == http.StatusForbidden || status == http.StatusConflict:
		return fmt.Errorf("%w: %s", ErrRefused, msg)
	}
	return fmt.Errorf("%s (HTTP %d)", msg, status)
}

// passwordGrant runs the password grant for the public client. Keycloak's
// direct grant takes a second factor's one-time code as the form parameter
// totp, which oauth2's PasswordCredentialsToken cannot send; with a code the
// request is made here, with the same fields and the same error type.
func passwordGrant(ctx context.Context, hc *http.Client, oc *oauth2.Config, username, password, otp string) (*oauth2.Token, error) {
	if otp == "" {
		tok, err := oc.PasswordCredentialsToken(context.WithValue(ctx, oauth2.HTTPClient, hc), username, password)
		if err != nil {
			return nil, fmt.Errorf("password grant: %w", err)
		}
		return tok, nil
	}
	form := url.Values{
		"grant_type": {"password"}, "client_id": {oc.ClientID}, "username": {username},
		"password": {password}, "totp": {otp}, "scope": {strings.Join(oc.Scopes, " ")},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, oc.Endpoint.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("password grant: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("password grant: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("password grant: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, &oauth2.RetrieveError{Response: resp, Body: body, ErrorCode: e.Error, ErrorDescription: e.Description}
	}
	var t struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("password grant: token response without access_token: %w", err)
	}
	tok := &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken}
	if t.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(t.ExpiresIn) * time.Second)
	}
	return tok, nil
}
