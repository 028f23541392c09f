package keycloak

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// serveRealms routes /realms/{realm}/... (the public, per-realm OIDC endpoints).
func (s *Server) serveRealms(w http.ResponseWriter, req *http.Request, seg []string) {
	if len(seg) == 0 {
		writeAdminError(w, http.StatusNotFound, "Unable to find matching target resource method")
		return
	}
	realmName := seg[0]
	s.mu.Lock()
	r, ok := s.realms[realmName]
	s.mu.Unlock()
	if !ok || !r.enabled {
		writeAdminError(w, http.StatusNotFound, "Realm does not exist")
		return
	}
	rest := strings.Join(seg[1:], "/")
	type route struct {
		methods []string
		h       func(http.ResponseWriter, *http.Request, *realm)
	}
	routes := map[string]route{
		"":                                 {[]string{http.MethodGet}, s.handleIssuer},
		".well-known/openid-configuration": {[]string{http.MethodGet}, s.handleDiscovery},
		"protocol/openid-connect/certs":    {[]string{http.MethodGet}, s.handleCerts},
		"protocol/openid-connect/token":    {[]string{http.MethodPost}, s.handleToken},
		"protocol/openid-connect/token/introspect": {[]string{http.MethodPost}, s.handleIntrospect},
		"protocol/openid-connect/userinfo":         {[]string{http.MethodGet, http.MethodPost}, s.handleUserinfo},
		"protocol/openid-connect/logout":           {[]string{http.MethodGet, http.MethodPost}, s.handleLogout},
		"protocol/openid-connect/revoke":           {[]string{http.MethodPost}, s.handleRevoke},
		"protocol/openid-connect/auth":             {[]string{http.MethodGet, http.MethodPost}, s.handleAuth},
		"login-actions/authenticate":               {[]string{http.MethodPost}, s.handleLoginAction},
	}
	rt, ok := routes[rest]
	if !ok {
		writeAdminError(w, http.StatusNotFound, "Unable to find matching target resource method")
		return
	}
	if !slices.Contains(rt.methods, req.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		writeAdminError(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
		return
	}
	rt.h(w, req, r)
}

// handleIssuer serves GET /realms/{realm} (gocloak GetIssuer).
func (s *Server) handleIssuer(w http.ResponseWriter, req *http.Request, r *realm) {
	iss := s.issuer(req, r.name)
	s.mu.Lock()
	body := map[string]any{
		"realm":             r.name,
		"public_key":        r.publicKeyPEMBody(),
		"token-service":     iss + "/protocol/openid-connect",
		"account-service":   iss + "/account",
		"tokens-not-before": r.notBefore,
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// handleDiscovery serves the OpenID Provider metadata.
func (s *Server) handleDiscovery(w http.ResponseWriter, req *http.Request, r *realm) {
	iss := s.issuer(req, r.name)
	oc := iss + "/protocol/openid-connect"
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                        iss,
		"authorization_endpoint":                        oc + "/auth",
		"token_endpoint":                                oc + "/token",
		"introspection_endpoint":                        oc + "/token/introspect",
		"userinfo_endpoint":                             oc + "/userinfo",
		"end_session_endpoint":                          oc + "/logout",
		"revocation_endpoint":                           oc + "/revoke",
		"jwks_uri":                                      oc + "/certs",
		"frontchannel_logout_session_supported":         true,
		"frontchannel_logout_supported":                 true,
		"backchannel_logout_supported":                  true,
		"backchannel_logout_session_supported":          true,
		"grant_types_supported":                         []string{"authorization_code", "implicit", "refresh_token", "password", "client_credentials"},
		"response_types_supported":                      []string{"code", "none", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"},
		"subject_types_supported":                       []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported":         []string{"RS256"},
		"userinfo_signing_alg_values_supported":         []string{"RS256", "none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"token_endpoint_auth_methods_supported":         []string{"client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                              []string{"openid", "profile", "email", "roles", "web-origins", "offline_access"},
		"claims_supported": []string{"aud", "sub", "iss", "auth_time", "name", "given_name", "family_name",
			"preferred_username", "email", "email_verified", "acr", "azp", "sid"},
		"code_challenge_methods_supported": []string{"plain", "S256"},
	})
}

// handleCerts serves the realm JWKS.
func (s *Server) handleCerts(w http.ResponseWriter, _ *http.Request, r *realm) {
	s.mu.Lock()
	body := r.jwks(s.now())
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// clientCredentials extracts client_id/client_secret from HTTP Basic (client_secret_basic,
// URL-decoded as RFC 6749 requires, raw when not valid encoding) or the form (client_secret_post).
func clientCredentials(req *http.Request) (id, secret string, basic bool) {
	if h := req.Header.Get("Authorization"); len(h) > 6 && strings.EqualFold(h[:6], "basic ") {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
		if err == nil {
			if i := strings.IndexByte(string(raw), ':'); i >= 0 {
				id, secret = string(raw[:i]), string(raw[i+1:])
				if v, err := url.QueryUnescape(id); err == nil {
					id = v
				}
				if v, err := url.QueryUnescape(secret); err == nil {
					secret = v
				}
				return id, secret, true
			}
		}
	}
	return req.PostFormValue("client_id"), req.PostFormValue("client_secret"), false
}

// authenticateClient authenticates the calling client like Keycloak's client-secret
// authenticator. Public clients only need a client_id. Caller holds s.mu.
func authenticateClient(r *realm, id, secret string) (*client, string, *oauthError) {
	if id == "" {
		return nil, "", oauthErr(http.StatusBadRequest, "invalid_client", "Missing client_id parameter")
	}
	c := r.clientByClientID(id)
	if c == nil {
		return nil, "client_not_found", oauthErr(http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials")
	}
	if !c.enabled {
		return nil, "client_disabled", oauthErr(http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials")
	}
	if c.bearerOnly {
		return nil, "invalid_client", oauthErr(http.StatusBadRequest, "invalid_client", "Bearer-only not allowed")
	}
	if c.public {
		return c, "", nil
	}
	if secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return nil, "invalid_client_credentials", oauthErr(http.StatusUnauthorized, "unauthorized_client", "Invalid client or Invalid client credentials")
	}
	return c, "", nil
}

// handleToken serves the token endpoint: password, client_credentials and refresh_token grants.
// response_type (always sent by gocloak) is ignored.
func (s *Server) handleToken(w http.ResponseWriter, req *http.Request, r *realm) {
	if err := req.ParseForm(); err != nil {
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "Invalid form body"))
		return
	}
	grant := req.PostFormValue("grant_type")
	iss := s.issuer(req, r.name)
	ip := clientIP(req)
	id, secret, _ := clientCredentials(req)
	authMethod := "client-secret"

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r.expireSessions(now)

	eventType := map[string]string{"password": "LOGIN", "client_credentials": "CLIENT_LOGIN", "refresh_token": "REFRESH_TOKEN", "authorization_code": "CODE_TO_TOKEN"}[grant]
	fail := func(e *oauthError, errCode, userID string, details map[string]string) {
		if eventType != "" {
			if details == nil {
				details = map[string]string{}
			}
			details["grant_type"] = grant
			r.addEvent(now, Event{Type: eventType + "_ERROR", ClientID: id, UserID: userID, IPAddress: ip, Error: errCode, Details: details})
		}
		writeOAuthError(w, e)
	}
	if grant == "" {
		fail(oauthErr(http.StatusBadRequest, "invalid_request", "Missing form parameter: grant_type"), "invalid_request", "", nil)
		return
	}
	if eventType == "" {
		fail(oauthErr(http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type"), "invalid_request", "", nil)
		return
	}
	c, errCode, oe := authenticateClient(r, id, secret)
	if oe != nil {
		fail(oe, errCode, "", nil)
		return
	}
	var (
		u        *user
		sess     *session
		scope    = req.PostFormValue("scope")
		nonce    string
		authTime int64
		details  = map[string]string{"grant_type": grant, "client_auth_method": authMethod, "auth_method": "openid-connect"}
	)
	switch grant {
	case "password":
		if !c.directGrants {
			fail(oauthErr(http.StatusBadRequest, "unauthorized_client", "Client not allowed for direct access grants"), "not_allowed", "", nil)
			return
		}
		username := strings.ToLower(req.PostFormValue("username"))
		details["username"] = username
		g := &directGrant{r: r, form: req.PostForm, now: now}
		if gf := g.run(); gf != nil {
			userID := ""
			if g.user != nil {
				userID = g.user.id
				if gf.counts {
					r.failedLogin(g.user, now, ip)
				}
			}
			fail(gf.oe, gf.eventErr, userID, map[string]string{"username": username, "auth_method": "openid-connect"})
			return
		}
		u = g.user
		if len(u.requiredActions) > 0 {
			fail(oauthErr(http.StatusBadRequest, "invalid_grant", "Account is not fully set up"), "resolve_required_actions", u.id, map[string]string{"username": username})
			return
		}
		r.successfulLogin(u)
		sess = &session{id: uuid.NewString(), userID: u.id, amr: g.amr, clients: map[string]string{c.id: c.clientID}, start: now, lastAccess: now, ip: ip}
		r.sessions[sess.id] = sess
		authTime = now.Unix()
	case "authorization_code":
		ac, oe, code := r.redeemCode(c, req.PostForm, now)
		if oe != nil {
			fail(oe, code, "", nil)
			return
		}
		sess = r.sessions[ac.sessionID]
		if !r.sessionValid(sess, now) {
			fail(oauthErr(http.StatusBadRequest, "invalid_grant", "Session not active"), "user_session_not_found", "", nil)
			return
		}
		u = r.users[sess.userID]
		if u == nil || !u.enabled {
			fail(oauthErr(http.StatusBadRequest, "invalid_grant", "User disabled"), "user_disabled", "", nil)
			return
		}
		scope, nonce, authTime = ac.scope, ac.nonce, ac.authTime
		details["code_id"] = sess.id
	case "client_credentials":
		if c.public {
			fail(oauthErr(http.StatusUnauthorized, "unauthorized_client", "Public client not allowed to retrieve service account"), "invalid_client", "", nil)
			return
		}
		if !c.serviceAccounts {
			fail(oauthErr(http.StatusBadRequest, "unauthorized_client", "Client not enabled to retrieve service account"), "invalid_client", "", nil)
			return
		}
		u = r.serviceAccountUser(c.clientID)
		if u == nil {
			fail(oauthErr(http.StatusBadRequest, "invalid_request", "Service account user not found"), "user_not_found", "", nil)
			return
		}
		if !u.enabled {
			fail(oauthErr(http.StatusBadRequest, "invalid_request", "User '"+u.username+"' disabled"), "user_disabled", u.id, nil)
			return
		}
		details["username"] = u.username
	case "refresh_token":
		raw := req.PostFormValue("refresh_token")
		if raw == "" {
			fail(oauthErr(http.StatusBadRequest, "invalid_request", "Missing parameter: refresh_token"), "invalid_token", "", nil)
			return
		}
		rc, _, err := r.parseToken(raw, iss, now)
		if err != nil || rc.Typ != typRefresh {
			fail(oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid refresh token"), "invalid_token", "", nil)
			return
		}
		if rc.Azp != c.clientID {
			fail(oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid refresh token. Token client and authorized client don't match"), "invalid_token", rc.Sub, nil)
			return
		}
		if problem := r.tokenProblem(rc, now); problem != "" {
			code := "invalid_token"
			if problem == reasonSessionGone {
				code = "user_session_not_found"
			}
			fail(oauthErr(http.StatusBadRequest, "invalid_grant", problem), code, rc.Sub, nil)
			return
		}
		u = r.users[rc.Sub]
		sess = r.sessions[rc.Sid]
		sess.lastAccess = now
		sess.clients[c.id] = c.clientID
		scope, nonce = rc.Scope, rc.Nonce
		details["refresh_token_id"] = rc.Jti
		details["refresh_token_type"] = typRefresh
	}
	ts, err := s.issueTokens(r, iss, c, u, sess, scope, nonce, now, authTime)
	if err != nil {
		fail(oauthErr(http.StatusInternalServerError, "unknown_error", ""), "unknown_error", u.id, nil)
		return
	}
	details["token_id"] = ts.accessJTI
	details["scope"] = ts.scope
	if ts.refreshJTI != "" {
		if grant == "refresh_token" {
			details["updated_refresh_token_id"] = ts.refreshJTI
		} else {
			details["refresh_token_id"] = ts.refreshJTI
			details["refresh_token_type"] = typRefresh
		}
	}
	r.addEvent(now, Event{Type: eventType, ClientID: c.clientID, UserID: u.id, SessionID: ts.sessionID, IPAddress: ip, Details: details})
	body := map[string]any{
		"access_token":       ts.access,
		"expires_in":         ts.accessExp,
		"refresh_expires_in": ts.refreshExp,
		"token_type":         "Bearer",
		"not-before-policy":  r.notBefore,
		"scope":              ts.scope,
	}
	if ts.refresh != "" {
		body["refresh_token"] = ts.refresh
		body["session_state"] = ts.sessionID
	}
	if ts.id != "" {
		body["id_token"] = ts.id
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, body)
}

// handleIntrospect serves token introspection (RFC 7662) for confidential clients.
func (s *Server) handleIntrospect(w http.ResponseWriter, req *http.Request, r *realm) {
	if err := req.ParseForm(); err != nil {
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "Invalid form body"))
		return
	}
	iss := s.issuer(req, r.name)
	ip := clientIP(req)
	id, secret, _ := clientCredentials(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r.expireSessions(now)
	c, _, oe := authenticateClient(r, id, secret)
	if oe != nil {
		r.addEvent(now, Event{Type: "INTROSPECT_TOKEN_ERROR", ClientID: id, IPAddress: ip, Error: "invalid_request"})
		writeOAuthError(w, oauthErr(http.StatusUnauthorized, "invalid_request", "Authentication failed."))
		return
	}
	if c.public {
		r.addEvent(now, Event{Type: "INTROSPECT_TOKEN_ERROR", ClientID: id, IPAddress: ip, Error: "invalid_request"})
		writeOAuthError(w, oauthErr(http.StatusForbidden, "invalid_request", "Client not allowed."))
		return
	}
	raw := req.PostFormValue("token")
	if raw == "" {
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "Token not provided."))
		return
	}
	switch hint := req.PostFormValue("token_type_hint"); hint {
	case "", "access_token", "refresh_token", "requesting_party_token":
	default:
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "Unsupported token type ["+hint+"]."))
		return
	}
	tc, claims, err := r.parseToken(raw, iss, now)
	if err != nil || tc.Typ == typID || r.tokenProblem(tc, now) != "" {
		r.addEvent(now, Event{Type: "INTROSPECT_TOKEN_ERROR", ClientID: c.clientID, IPAddress: ip, Error: "invalid_token"})
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	if tc.Typ == typBearer {
		if err := r.introspectionClaims(tc, claims); err != nil {
			writeOAuthError(w, oauthErr(http.StatusInternalServerError, "unknown_error", ""))
			return
		}
	}
	claims["client_id"] = tc.Azp
	if tc.PreferredUsername != "" {
		claims["username"] = tc.PreferredUsername
	}
	claims["token_type"] = "Bearer"
	claims["active"] = true
	r.addEvent(now, Event{Type: "INTROSPECT_TOKEN", ClientID: c.clientID, UserID: tc.Sub, SessionID: tc.Sid, IPAddress: ip})
	writeJSON(w, http.StatusOK, claims)
}

// handleUserinfo serves the userinfo endpoint for bearer access tokens with the openid scope.
func (s *Server) handleUserinfo(w http.ResponseWriter, req *http.Request, r *realm) {
	raw := bearerToken(req)
	if raw == "" && req.Method == http.MethodPost {
		raw = req.PostFormValue("access_token")
	}
	iss := s.issuer(req, r.name)
	ip := clientIP(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	reject := func(status int, code, desc string) {
		r.addEvent(now, Event{Type: "USER_INFO_REQUEST_ERROR", IPAddress: ip, Error: "invalid_token"})
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.name+`", error="`+code+`", error_description="`+desc+`"`)
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if raw == "" {
		reject(http.StatusUnauthorized, "invalid_token", "Token not provided")
		return
	}
	tc, _, err := r.parseToken(raw, iss, now)
	if err != nil || tc.Typ != typBearer || r.tokenProblem(tc, now) != "" {
		reject(http.StatusUnauthorized, "invalid_token", "Token verification failed")
		return
	}
	if !slices.Contains(strings.Fields(tc.Scope), "openid") {
		reject(http.StatusForbidden, "insufficient_scope", "Missing openid scope")
		return
	}
	u := r.users[tc.Sub]
	body := map[string]any{
		"sub":                u.id,
		"email_verified":     u.emailVerified,
		"preferred_username": u.username,
	}
	if name := strings.TrimSpace(u.firstName + " " + u.lastName); name != "" {
		body["name"] = name
	}
	if u.firstName != "" {
		body["given_name"] = u.firstName
	}
	if u.lastName != "" {
		body["family_name"] = u.lastName
	}
	if u.email != "" {
		body["email"] = u.email
	}
	if c := r.clientByClientID(tc.Azp); c != nil {
		realmRoles, clientRoles := r.effectiveRoles(u)
		extra, err := r.mapperClaims(c, u, r.sessions[tc.Sid], realmRoles, clientRoles, kindUserinfo)
		if err != nil {
			reject(http.StatusInternalServerError, "unknown_error", "Mapper failed")
			return
		}
		for k, v := range extra {
			if _, set := body[k]; !set {
				body[k] = v
			}
		}
	}
	r.addEvent(now, Event{Type: "USER_INFO_REQUEST", ClientID: tc.Azp, UserID: u.id, SessionID: tc.Sid, IPAddress: ip})
	writeJSON(w, http.StatusOK, body)
}

// handleLogout serves the end-session endpoint. With a refresh_token (gocloak Logout and
// LogoutPublicClient) it ends that session and answers 204; with an id_token_hint (browser
// RP-initiated logout) it ends the session and redirects to post_logout_redirect_uri.
func (s *Server) handleLogout(w http.ResponseWriter, req *http.Request, r *realm) {
	if err := req.ParseForm(); err != nil {
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "Invalid form body"))
		return
	}
	iss := s.issuer(req, r.name)
	ip := clientIP(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r.expireSessions(now)
	if raw := req.PostFormValue("refresh_token"); raw != "" {
		id, secret, _ := clientCredentials(req)
		c, errCode, oe := authenticateClient(r, id, secret)
		if oe != nil {
			r.addEvent(now, Event{Type: "LOGOUT_ERROR", ClientID: id, IPAddress: ip, Error: errCode})
			writeOAuthError(w, oe)
			return
		}
		rc, _, err := r.parseToken(raw, iss, now)
		if err != nil || rc.Typ != typRefresh || rc.Azp != c.clientID || now.Unix() > rc.Exp {
			r.addEvent(now, Event{Type: "LOGOUT_ERROR", ClientID: c.clientID, IPAddress: ip, Error: "invalid_token"})
			writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_grant", "Invalid refresh token"))
			return
		}
		sess := r.sessions[rc.Sid]
		if !r.sessionValid(sess, now) {
			r.addEvent(now, Event{Type: "LOGOUT_ERROR", ClientID: c.clientID, UserID: rc.Sub, IPAddress: ip, Error: "user_session_not_found"})
			writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_grant", "Session not active"))
			return
		}
		delete(r.sessions, sess.id)
		r.addEvent(now, Event{Type: "LOGOUT", ClientID: c.clientID, UserID: sess.userID, SessionID: sess.id, IPAddress: ip})
		writeNoContent(w)
		return
	}
	// RP-initiated logout (OIDC RP-Initiated Logout 1.0, Keycloak's LogoutEndpoint): the client
	// comes from id_token_hint or client_id, and post_logout_redirect_uri must be one of that
	// client's post-logout redirect URIs.
	var tc *tokenClaims
	if hint := req.FormValue("id_token_hint"); hint != "" {
		parsed, _, err := r.parseToken(hint, iss, now)
		if err != nil || parsed.Typ != typID {
			r.addEvent(now, Event{Type: "LOGOUT_ERROR", IPAddress: ip, Error: "invalid_token"})
			writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Invalid parameter: id_token_hint"})
			return
		}
		tc = parsed
	}
	clientID := req.FormValue("client_id")
	if tc != nil {
		if clientID != "" && clientID != tc.Azp {
			r.addEvent(now, Event{Type: "LOGOUT_ERROR", ClientID: clientID, IPAddress: ip, Error: "invalid_token"})
			writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Parameter client_id different than the authorized party from id_token_hint"})
			return
		}
		clientID = tc.Azp
	}
	redirect := req.FormValue("post_logout_redirect_uri")
	if redirect != "" {
		c := r.clientByClientID(clientID)
		switch {
		case clientID == "":
			writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Either the parameter client_id or the parameter id_token_hint is required when post_logout_redirect_uri is used."})
			return
		case c == nil || !c.enabled:
			r.addEvent(now, Event{Type: "LOGOUT_ERROR", ClientID: clientID, IPAddress: ip, Error: "client_not_found"})
			writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Client not found."})
			return
		case !validPostLogoutRedirect(c, redirect):
			r.addEvent(now, Event{Type: "LOGOUT_ERROR", ClientID: clientID, IPAddress: ip, Error: "invalid_redirect_uri",
				Details: map[string]string{"redirect_uri": redirect}})
			writePage(w, http.StatusBadRequest, loginPage{Title: "We are sorry...", Error: "Invalid redirect uri"})
			return
		}
	}
	if tc == nil {
		// Without a hint Keycloak asks the user to confirm; the simulator ends nothing.
		writePage(w, http.StatusOK, loginPage{Title: "Logging out", Error: "Do you want to log out?"})
		return
	}
	if sess := r.sessions[tc.Sid]; sess != nil {
		delete(r.sessions, sess.id)
		r.addEvent(now, Event{Type: "LOGOUT", ClientID: tc.Azp, UserID: sess.userID, SessionID: sess.id, IPAddress: ip})
	}
	if redirect != "" {
		if st := req.FormValue("state"); st != "" {
			redirect = withQuery(redirect, url.Values{"state": {st}})
		}
		http.Redirect(w, req, redirect, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("<!DOCTYPE html><html><body><p>You are logged out</p></body></html>"))
}

// handleRevoke serves token revocation (RFC 7009). Revoking a refresh token ends the client's
// sessions of that user; revoking an access token blacklists it until it expires.
func (s *Server) handleRevoke(w http.ResponseWriter, req *http.Request, r *realm) {
	if err := req.ParseForm(); err != nil {
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "Invalid form body"))
		return
	}
	iss := s.issuer(req, r.name)
	ip := clientIP(req)
	id, secret, _ := clientCredentials(req)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	c, errCode, oe := authenticateClient(r, id, secret)
	if oe != nil {
		r.addEvent(now, Event{Type: "REVOKE_GRANT_ERROR", ClientID: id, IPAddress: ip, Error: errCode})
		writeOAuthError(w, oe)
		return
	}
	raw := req.PostFormValue("token")
	if raw == "" {
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "invalid_request", "Token not provided"))
		return
	}
	tc, _, err := r.parseToken(raw, iss, now)
	if err != nil || now.Unix() > tc.Exp {
		// RFC 7009: an invalid token is not an error for the caller.
		r.addEvent(now, Event{Type: "REVOKE_GRANT_ERROR", ClientID: c.clientID, IPAddress: ip, Error: "invalid_token"})
		writeJSON(w, http.StatusOK, map[string]string{"error": "invalid_token", "error_description": "Invalid token"})
		return
	}
	if tc.Azp != c.clientID {
		r.addEvent(now, Event{Type: "REVOKE_GRANT_ERROR", ClientID: c.clientID, IPAddress: ip, Error: "invalid_client"})
		writeOAuthError(w, oauthErr(http.StatusBadRequest, "unauthorized_client", "Unmatching clients"))
		return
	}
	switch tc.Typ {
	case typRefresh:
		for sid, sess := range r.sessions {
			if sess.userID != tc.Sub {
				continue
			}
			delete(sess.clients, c.id)
			if len(sess.clients) == 0 {
				delete(r.sessions, sid)
			}
		}
	default:
		r.revoked[tc.Jti] = tc.Exp
	}
	r.addEvent(now, Event{Type: "REVOKE_GRANT", ClientID: c.clientID, UserID: tc.Sub, IPAddress: ip})
	w.WriteHeader(http.StatusOK)
}

// sessionRepresentation is Keycloak's UserSessionRepresentation.
type sessionRepresentation struct {
	ID         string            `json:"id"`
	Username   string            `json:"username"`
	UserID     string            `json:"userId"`
	IPAddress  string            `json:"ipAddress"`
	Start      int64             `json:"start"`
	LastAccess int64             `json:"lastAccess"`
	RememberMe bool              `json:"rememberMe"`
	Clients    map[string]string `json:"clients"`
}

func sessionRep(sess *session, u *user) sessionRepresentation {
	clients := make(map[string]string, len(sess.clients))
	for k, v := range sess.clients {
		clients[k] = v
	}
	return sessionRepresentation{
		ID: sess.id, Username: u.username, UserID: u.id, IPAddress: sess.ip,
		Start: sess.start.UnixMilli(), LastAccess: sess.lastAccess.UnixMilli(), Clients: clients,
	}
}
