package keycloak

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Browser-flow authenticators the simulator runs (the realm's browserFlow).
const (
	authCookie       = "auth-cookie"
	authUsernameForm = "auth-username-password-form"
	authOTPForm      = "auth-otp-form"
	authIdPRedirect  = "identity-provider-redirector"
)

// builtinBrowser is Keycloak's built-in browser flow: cookie, or the username/password form
// followed by an OTP form when the user has one.
const builtinBrowser = "browser"

var defaultBrowserFlow = &authFlow{alias: builtinBrowser, topLevel: true, executions: []*execution{
	{authenticator: authCookie, requirement: reqAlternative, priority: 10},
	{flowAlias: "forms", requirement: reqAlternative, priority: 30},
}}

var defaultBrowserForms = &authFlow{alias: "forms", executions: []*execution{
	{authenticator: authUsernameForm, requirement: reqRequired, priority: 10},
	{flowAlias: "Browser - Conditional OTP", requirement: reqConditional, priority: 20},
}}

var defaultBrowserOTP = &authFlow{alias: "Browser - Conditional OTP", executions: []*execution{
	{authenticator: condUserConfigured, requirement: reqRequired, priority: 10},
	{authenticator: authOTPForm, requirement: reqRequired, priority: 20},
}}

// authSession is one browser login in progress (Keycloak's authentication session, one tab).
type authSession struct {
	tabID, code                string
	clientUUID, redirectURI    string
	state, nonce, scope        string
	challenge, challengeMethod string
	username, password         string // the first form's values, kept for the OTP step
	passed                     bool   // the username/password form succeeded
	created                    time.Time
}

// authCode is an issued authorization code (single use, accessCodeLifespan 60 s).
type authCode struct {
	clientUUID, redirectURI, sessionID string
	scope, nonce                       string
	challenge, challengeMethod         string
	authTime                           int64
	exp                                time.Time
}

// pkceChars is RFC 7636's code_challenge / code_verifier alphabet and length.
var pkceChars = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

// validRedirect reports whether uri matches one of c's redirect URIs, a trailing "*" matching
// any suffix (Keycloak's RedirectUtils).
func validRedirect(c *client, uri string) bool {
	return matchRedirect(c.redirectURIs, uri)
}

// postLogoutRedirectAttr is the client attribute listing its post-logout redirect URIs,
// separated by "##"; "+" stands for the client's redirect URIs.
const postLogoutRedirectAttr = "post.logout.redirect.uris"

// validPostLogoutRedirect reports whether uri is one of c's post-logout redirect URIs.
func validPostLogoutRedirect(c *client, uri string) bool {
	var allowed []string
	for _, a := range strings.Split(c.attributes[postLogoutRedirectAttr], "##") {
		switch a {
		case "":
		case "+":
			allowed = append(allowed, c.redirectURIs...)
		default:
			allowed = append(allowed, a)
		}
	}
	return matchRedirect(allowed, uri)
}

// withQuery appends v to uri's query.
func withQuery(uri string, v url.Values) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + v.Encode()
}

func matchRedirect(redirectURIs []string, uri string) bool {
	if uri == "" {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Fragment != "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	for _, allowed := range redirectURIs {
		if prefix, ok := strings.CutSuffix(allowed, "*"); ok {
			if strings.HasPrefix(uri, prefix) {
				return true
			}
		} else if uri == allowed {
			return true
		}
	}
	return false
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><title>{{.Title}}</title></head><body>
<h1 id="kc-page-title">{{.Title}}</h1>
{{if .Error}}<span id="input-error">{{.Error}}</span>{{end}}
{{if .Action}}<form id="{{.FormID}}" action="{{.Action}}" method="post">
{{if eq .FormID "kc-form-login"}}<input id="username" name="username" type="text" autofocus>
<input id="password" name="password" type="password">{{else}}<input id="otp" name="otp" type="text" autocomplete="off" autofocus>{{end}}
<input type="submit" id="kc-login" value="Sign In">
</form>{{end}}
</body></html>`))

type loginPage struct {
	Title, Error, Action, FormID string
}

func writePage(w http.ResponseWriter, status int, p loginPage) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, must-revalidate, max-age=0")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, p)
}

// handleAuth serves the authorization endpoint (authorization code flow): it checks the
// request as Keycloak's AuthorizationEndpointChecker does, PKCE included, and shows the login
// form. Errors before the redirect URI is known are an error page; after, a redirect carrying
// error and error_description.
func (s *Server) handleAuth(w http.ResponseWriter, req *http.Request, r *realm) {
	if err := req.ParseForm(); err != nil {
		writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Invalid Request"})
		return
	}
	q := req.Form
	ip := clientIP(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	clientID := q.Get("client_id")
	if clientID == "" {
		r.addEvent(now, Event{Type: "LOGIN_ERROR", IPAddress: ip, Error: "invalid_request"})
		writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Missing parameter: client_id"})
		return
	}
	c := r.clientByClientID(clientID)
	if c == nil || !c.enabled {
		r.addEvent(now, Event{Type: "LOGIN_ERROR", ClientID: clientID, IPAddress: ip, Error: "client_not_found"})
		writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Client not found."})
		return
	}
	redirect := q.Get("redirect_uri")
	if !validRedirect(c, redirect) {
		r.addEvent(now, Event{Type: "LOGIN_ERROR", ClientID: clientID, IPAddress: ip, Error: "invalid_redirect_uri"})
		writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Invalid parameter: redirect_uri"})
		return
	}
	state := q.Get("state")
	refuse := func(code, desc string) {
		r.addEvent(now, Event{Type: "LOGIN_ERROR", ClientID: clientID, IPAddress: ip, Error: code,
			Details: map[string]string{"redirect_uri": redirect, "reason": desc}})
		v := url.Values{"error": {code}, "error_description": {desc}}
		if state != "" {
			v.Set("state", state)
		}
		sep := "?"
		if strings.Contains(redirect, "?") {
			sep = "&"
		}
		http.Redirect(w, req, redirect+sep+v.Encode(), http.StatusFound)
	}
	switch rt := q.Get("response_type"); {
	case rt == "":
		refuse("invalid_request", "Missing parameter: response_type")
		return
	case rt != "code":
		refuse("unsupported_response_type", "Client is not allowed to initiate browser login with given response_type.")
		return
	}
	if !c.standardFlow || c.bearerOnly {
		refuse("unauthorized_client", "Client is not allowed to initiate browser login with given response_type. Standard flow is disabled for the client.")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if required := c.attributes["pkce.code.challenge.method"]; required != "" {
		switch {
		case method == "":
			refuse("invalid_request", "Missing parameter: code_challenge_method")
			return
		case method != required:
			refuse("invalid_request", "Invalid parameter: code challenge method is not configured one")
			return
		case challenge == "":
			refuse("invalid_request", "Missing parameter: code_challenge")
			return
		}
	} else if challenge != "" && method == "" {
		method = "plain"
	}
	if challenge != "" {
		if method != "plain" && method != "S256" {
			refuse("invalid_request", "Invalid parameter: code_challenge_method")
			return
		}
		if !pkceChars.MatchString(challenge) {
			refuse("invalid_request", "Invalid parameter: code_challenge")
			return
		}
	}
	as := &authSession{
		tabID: uuid.NewString()[:11], code: randomSecret(), clientUUID: c.id, redirectURI: redirect,
		state: state, nonce: q.Get("nonce"), scope: q.Get("scope"), challenge: challenge,
		challengeMethod: method, created: now,
	}
	r.authSessions[as.tabID] = as
	writePage(w, http.StatusOK, loginPage{Title: "Sign in to your account", Action: loginAction(s.issuer(req, r.name), as, c), FormID: "kc-form-login"})
}

func loginAction(iss string, as *authSession, c *client) string {
	v := url.Values{"session_code": {as.code}, "execution": {"login"}, "client_id": {c.clientID}, "tab_id": {as.tabID}}
	return iss + "/login-actions/authenticate?" + v.Encode()
}

// handleLoginAction takes the login form (and then the OTP form) and runs the realm's browser
// flow; on success it redirects to the client with a single-use code.
func (s *Server) handleLoginAction(w http.ResponseWriter, req *http.Request, r *realm) {
	if err := req.ParseForm(); err != nil {
		writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Invalid Request"})
		return
	}
	iss := s.issuer(req, r.name)
	ip := clientIP(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	q := req.URL.Query()
	as := r.authSessions[q.Get("tab_id")]
	if as == nil || subtle.ConstantTimeCompare([]byte(q.Get("session_code")), []byte(as.code)) != 1 || now.Sub(as.created) > 30*time.Minute {
		writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Your login attempt timed out. Login will start from the beginning."})
		return
	}
	c := r.clients[as.clientUUID]
	if c == nil || !c.enabled {
		writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Client not found."})
		return
	}
	form := url.Values{}
	if as.passed {
		form.Set("username", as.username)
		form.Set("password", as.password)
		if otp, ok := req.PostForm["otp"]; ok {
			form["totp"] = otp
		}
	} else {
		form.Set("username", req.PostFormValue("username"))
		form.Set("password", req.PostFormValue("password"))
	}
	g := &directGrant{r: r, form: form, now: now, interactive: true}
	f := r.flows[r.browserFlow]
	if f == nil {
		f = defaultBrowserFlow
	}
	gf := g.runFlow(f)
	details := map[string]string{"username": strings.ToLower(form.Get("username")), "auth_method": "openid-connect", "redirect_uri": as.redirectURI}
	login := loginPage{Title: "Sign in to your account", Action: loginAction(iss, as, c), FormID: "kc-form-login"}
	otpPage := loginPage{Title: "Sign in to your account", Action: loginAction(iss, as, c), FormID: "kc-otp-login-form"}
	switch {
	case gf != nil && gf.challenge:
		// Username and password done; the flow wants a one-time code.
		as.passed, as.username, as.password = true, form.Get("username"), form.Get("password")
		writePage(w, http.StatusOK, otpPage)
		return
	case gf != nil:
		userID := ""
		if g.user != nil {
			userID = g.user.id
			if gf.counts {
				r.failedLogin(g.user, now, ip)
			}
		}
		r.addEvent(now, Event{Type: "LOGIN_ERROR", ClientID: c.clientID, UserID: userID, IPAddress: ip, Error: gf.eventErr, Details: details})
		if as.passed {
			otpPage.Error = "Invalid authenticator code."
			writePage(w, http.StatusOK, otpPage)
			return
		}
		login.Error = "Invalid username or password."
		if gf.eventErr == "user_disabled" {
			login.Error = "Account is disabled, contact your administrator."
		}
		writePage(w, http.StatusOK, login)
		return
	}
	u := g.user
	r.successfulLogin(u)
	delete(r.authSessions, as.tabID)
	sess := &session{id: uuid.NewString(), userID: u.id, amr: g.amr, clients: map[string]string{c.id: c.clientID}, start: now, lastAccess: now, ip: ip}
	r.sessions[sess.id] = sess
	code := uuid.NewString() + "." + sess.id + "." + c.id
	r.codes[code] = &authCode{
		clientUUID: c.id, redirectURI: as.redirectURI, sessionID: sess.id, scope: as.scope, nonce: as.nonce,
		challenge: as.challenge, challengeMethod: as.challengeMethod, authTime: now.Unix(), exp: now.Add(60 * time.Second),
	}
	details["code_id"] = sess.id
	r.addEvent(now, Event{Type: "LOGIN", ClientID: c.clientID, UserID: u.id, SessionID: sess.id, IPAddress: ip, Details: details})
	v := url.Values{"session_state": {sess.id}, "iss": {iss}, "code": {code}}
	if as.state != "" {
		v.Set("state", as.state)
	}
	sep := "?"
	if strings.Contains(as.redirectURI, "?") {
		sep = "&"
	}
	http.Redirect(w, req, as.redirectURI+sep+v.Encode(), http.StatusFound)
}

// redeemCode checks an authorization code for the token endpoint (single use, same client and
// redirect URI, PKCE verifier). Caller holds s.mu.
func (r *realm) redeemCode(c *client, form url.Values, now time.Time) (*authCode, *oauthError, string) {
	raw := form.Get("code")
	if raw == "" {
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "Missing parameter: code"), "invalid_code"
	}
	ac := r.codes[raw]
	delete(r.codes, raw)
	if ac == nil || now.After(ac.exp) {
		return nil, oauthErr(http.StatusBadRequest, "invalid_grant", "Code not valid"), "invalid_code"
	}
	if ac.clientUUID != c.id {
		return nil, oauthErr(http.StatusBadRequest, "invalid_grant", "Auth error"), "invalid_client_credentials"
	}
	if form.Get("redirect_uri") != ac.redirectURI {
		return nil, oauthErr(http.StatusBadRequest, "invalid_grant", "Incorrect redirect_uri"), "invalid_code"
	}
	if ac.challenge != "" {
		verifier := form.Get("code_verifier")
		if verifier == "" {
			return nil, oauthErr(http.StatusBadRequest, "invalid_grant", "PKCE code verifier not specified"), "code_verifier_missing"
		}
		if !pkceChars.MatchString(verifier) {
			return nil, oauthErr(http.StatusBadRequest, "invalid_grant", "PKCE invalid code verifier"), "invalid_code_verifier"
		}
		computed := verifier
		if ac.challengeMethod == "S256" {
			sum := sha256.Sum256([]byte(verifier))
			computed = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		if subtle.ConstantTimeCompare([]byte(computed), []byte(ac.challenge)) != 1 {
			return nil, oauthErr(http.StatusBadRequest, "invalid_grant", "PKCE verification failed"), "pkce_verification_failed"
		}
	}
	return ac, nil, ""
}
