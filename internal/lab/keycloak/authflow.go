package keycloak

import (
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Authenticators and conditions the simulator runs in a realm's direct grant flow (Keycloak's
// provider ids). A flow bound to the direct grant that uses another one is refused on load.
const (
	authValidateUsername = "direct-grant-validate-username"
	authValidatePassword = "direct-grant-validate-password"
	authValidateOTP      = "direct-grant-validate-otp"
	condUserConfigured   = "conditional-user-configured"
	condUserRole         = "conditional-user-role"
)

// Execution requirements.
const (
	reqRequired    = "REQUIRED"
	reqConditional = "CONDITIONAL"
	reqAlternative = "ALTERNATIVE"
	reqDisabled    = "DISABLED"
)

// builtinDirectGrant is the alias of Keycloak's built-in direct grant flow: username, password,
// and an OTP when the user has one configured.
const builtinDirectGrant = "direct grant"

// authConfigReference is the authenticator-config key holding the execution's authentication
// method reference (Keycloak 24's AMR support: "Authentication Reference"), e.g. "pwd", "otp".
const authConfigReference = "default.reference.value"

// authFlow is one authentication flow (AuthenticationFlowRepresentation).
type authFlow struct {
	alias      string
	topLevel   bool
	executions []*execution // by priority
}

// execution is one step of a flow (AuthenticationExecutionExportRepresentation).
type execution struct {
	authenticator string // empty for a subflow
	flowAlias     string // the subflow's alias
	requirement   string
	configAlias   string
	priority      int
}

// bruteForce holds the realm's brute-force detection settings (RealmRepresentation fields).
type bruteForce struct {
	enabled          bool
	permanentLockout bool
	failureFactor    int
	waitIncrement    time.Duration
	maxWait          time.Duration
	minQuickWait     time.Duration
	quickCheck       time.Duration
	maxDelta         time.Duration
}

// loginFailure is a user's brute-force record (Keycloak's UserLoginFailureModel).
type loginFailure struct {
	num       int
	last      time.Time
	notBefore time.Time
	lastIP    string
}

// otpPolicy is the realm's OTP policy.
type otpPolicy struct {
	typ          string
	algorithm    string
	digits       int
	period       int
	lookAhead    int
	codeReusable bool
}

// otpCredential is one OTP credential of a user (type "otp").
type otpCredential struct {
	id, label string
	created   int64
	secret    string // the raw secret, as Keycloak stores it; the HMAC key is its UTF-8 bytes
	subType   string
	digits    int
	period    int
	algorithm string
}

// base32Seed is the secret as an authenticator app takes it (Keycloak's QR code: Base32 of the
// secret's bytes).
func (c *otpCredential) base32Seed() string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(c.secret))
}

func otpAlgorithm(name string) (otp.Algorithm, error) {
	switch name {
	case "", "HmacSHA1":
		return otp.AlgorithmSHA1, nil
	case "HmacSHA256":
		return otp.AlgorithmSHA256, nil
	case "HmacSHA512":
		return otp.AlgorithmSHA512, nil
	}
	return 0, fmt.Errorf("unknown OTP algorithm %q", name)
}

func otpDigits(n int) (otp.Digits, error) {
	switch n {
	case 0, 6:
		return otp.DigitsSix, nil
	case 8:
		return otp.DigitsEight, nil
	}
	return 0, fmt.Errorf("unsupported OTP digits %d", n)
}

// validOTP reports whether code is a current TOTP code of one of u's credentials (RFC 6238,
// within the realm's look-around window), refusing a code already used when the policy says codes
// are not reusable. It marks the code used. Caller holds s.mu.
func (r *realm) validOTP(u *user, code string, now time.Time) bool {
	code = strings.TrimSpace(code)
	if code == "" {
		return false
	}
	for _, c := range u.otp {
		alg, err := otpAlgorithm(c.algorithm)
		if err != nil {
			continue
		}
		digits, err := otpDigits(c.digits)
		if err != nil {
			continue
		}
		ok, err := totp.ValidateCustom(code, c.base32Seed(), now, totp.ValidateOpts{
			Period: uint(c.period), Skew: uint(r.otp.lookAhead), Digits: digits, Algorithm: alg,
		})
		if err != nil || !ok {
			continue
		}
		if !r.otp.codeReusable {
			key := c.id + "." + code
			if exp, used := r.usedCodes[key]; used && now.Before(exp) {
				return false
			}
			r.usedCodes[key] = now.Add(time.Duration(c.period*(2*r.otp.lookAhead+1)) * time.Second)
		}
		return true
	}
	return false
}

// TOTPCode returns the current one-time code of a lab user at t, from the documented lab seed
// (LabTOTPSeeds), or "" for a user without one. Tests and the demo use it as an authenticator
// app would.
func TOTPCode(username string, t time.Time) string {
	seed, ok := LabTOTPSeeds[strings.ToLower(username)]
	if !ok {
		return ""
	}
	code, err := totp.GenerateCodeCustom(seed, t, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return ""
	}
	return code
}

// ---- brute force (Keycloak's DefaultBruteForceProtector) ----

// temporarilyLocked reports whether u may not log in at now because of brute-force detection.
func (r *realm) temporarilyLocked(u *user, now time.Time) bool {
	if !r.bruteForce.enabled {
		return false
	}
	f := r.failures[u.id]
	return f != nil && now.Before(f.notBefore)
}

// failedLogin records a failed login of u, locking the account as Keycloak does: after every
// failureFactor failures the wait grows by waitIncrement (up to maxWait), two failures closer
// than quickCheck lock for minQuickWait, failures older than maxDelta are forgotten, and with
// permanentLockout the user is disabled.
func (r *realm) failedLogin(u *user, now time.Time, ip string) {
	if !r.bruteForce.enabled || u == nil {
		return
	}
	bf := r.bruteForce
	f := r.failures[u.id]
	if f == nil {
		f = &loginFailure{}
		r.failures[u.id] = f
	}
	var delta time.Duration
	if !f.last.IsZero() {
		delta = now.Sub(f.last)
	}
	f.last, f.lastIP = now, ip
	if bf.permanentLockout {
		f.num++
		if f.num >= bf.failureFactor {
			u.enabled = false
			if u.attributes == nil {
				u.attributes = map[string][]string{}
			}
			u.attributes["disabledReason"] = []string{"permanentLockout"}
		}
		return
	}
	if delta > 0 && delta > bf.maxDelta {
		f.num = 0
	}
	f.num++
	var wait time.Duration
	if bf.failureFactor > 0 {
		wait = bf.waitIncrement * time.Duration(f.num/bf.failureFactor)
	}
	if delta > 0 && delta < bf.quickCheck && wait < bf.minQuickWait {
		wait = bf.minQuickWait
	}
	if wait > bf.maxWait {
		wait = bf.maxWait
	}
	if wait > 0 {
		f.notBefore = now.Add(wait)
	}
}

// successfulLogin clears u's failures.
func (r *realm) successfulLogin(u *user) { delete(r.failures, u.id) }

// ---- the direct grant flow ----

// grantFailure is how a direct grant ends when the flow refuses it.
type grantFailure struct {
	oe        *oauthError
	eventErr  string
	counts    bool // a failure the brute-force detector records (Keycloak's FAILURE, not FORCE_CHALLENGE)
	challenge bool // a browser flow wants the next form (the one-time code)
	attempted bool // an alternative that did not apply (no SSO cookie)
}

// directGrant runs the realm's direct grant flow for the form (username, password, totp). It
// returns the user and the authentication method references of the executions that completed.
type directGrant struct {
	r           *realm
	form        url.Values
	now         time.Time
	user        *user
	amr         []string
	interactive bool // the browser flow: a missing code asks for it instead of failing
}

func (g *directGrant) run() *grantFailure {
	f := g.r.flows[g.r.directGrantFlow]
	if f == nil {
		f = defaultDirectGrantFlow
	}
	return g.runFlow(f)
}

// defaultDirectGrantFlow is Keycloak's built-in direct grant flow.
var defaultDirectGrantFlow = &authFlow{alias: builtinDirectGrant, topLevel: true, executions: []*execution{
	{authenticator: authValidateUsername, requirement: reqRequired, priority: 10},
	{authenticator: authValidatePassword, requirement: reqRequired, priority: 20},
	{flowAlias: "Direct Grant - Conditional OTP", requirement: reqConditional, priority: 30},
}}

var defaultConditionalOTPFlow = &authFlow{alias: "Direct Grant - Conditional OTP", executions: []*execution{
	{authenticator: condUserConfigured, requirement: reqRequired, priority: 10},
	{authenticator: authValidateOTP, requirement: reqRequired, priority: 20},
}}

func (g *directGrant) flow(alias string) *authFlow {
	if f := g.r.flows[alias]; f != nil {
		return f
	}
	for _, d := range []*authFlow{defaultConditionalOTPFlow, defaultBrowserForms, defaultBrowserOTP} {
		if alias == d.alias {
			return d
		}
	}
	return nil
}

func isCondition(authenticator string) bool { return strings.HasPrefix(authenticator, "conditional-") }

// runFlow runs one flow as Keycloak's DefaultAuthenticationFlow does: REQUIRED and CONDITIONAL
// executions in order (a CONDITIONAL subflow only when all its conditions hold); ALTERNATIVE
// executions only when the flow has no required ones, the first that succeeds wins.
func (g *directGrant) runFlow(f *authFlow) *grantFailure {
	var required, alternative []*execution
	for _, e := range f.executions {
		if isCondition(e.authenticator) {
			continue
		}
		switch e.requirement {
		case reqRequired, reqConditional:
			required = append(required, e)
		case reqAlternative:
			alternative = append(alternative, e)
		}
	}
	for _, e := range required {
		if fail := g.runExecution(e); fail != nil {
			return fail
		}
	}
	if len(required) > 0 || len(alternative) == 0 {
		return nil
	}
	var last *grantFailure
	for _, e := range alternative {
		if last = g.runExecution(e); last == nil || !last.attempted {
			return last
		}
	}
	return last
}

func (g *directGrant) runExecution(e *execution) *grantFailure {
	if e.flowAlias != "" {
		sub := g.flow(e.flowAlias)
		if sub == nil {
			return &grantFailure{oe: oauthErr(http.StatusInternalServerError, "unknown_error", ""), eventErr: "invalid_flow"}
		}
		if e.requirement == reqConditional && !g.conditionsHold(sub) {
			return nil
		}
		return g.runFlow(sub)
	}
	if fail := g.authenticate(e.authenticator, e.requirement); fail != nil {
		return fail
	}
	if ref := g.r.authConfig[e.configAlias][authConfigReference]; ref != "" && !slices.Contains(g.amr, ref) {
		g.amr = append(g.amr, ref)
	}
	return nil
}

// conditionsHold evaluates a conditional subflow's conditions; a subflow without any is skipped,
// as in Keycloak.
func (g *directGrant) conditionsHold(f *authFlow) bool {
	n := 0
	for _, e := range f.executions {
		if !isCondition(e.authenticator) || e.requirement == reqDisabled {
			continue
		}
		n++
		if g.user == nil {
			return false
		}
		cfg := g.r.authConfig[e.configAlias]
		var ok bool
		switch e.authenticator {
		case condUserConfigured:
			ok = g.configuredFor(f)
		case condUserRole:
			ok = g.r.userHasRole(g.user, cfg["condUserRole"])
			if cfg["negate"] == "true" {
				ok = !ok
			}
		}
		if !ok {
			return false
		}
	}
	return n > 0
}

// configuredFor reports whether the user has the credentials the flow's authenticators need
// (Keycloak's "Condition - user configured").
func (g *directGrant) configuredFor(f *authFlow) bool {
	for _, e := range f.executions {
		if isCondition(e.authenticator) || e.requirement == reqDisabled || e.flowAlias != "" {
			continue
		}
		switch e.authenticator {
		case authValidateOTP, authOTPForm:
			if len(g.user.otp) == 0 {
				return false
			}
		case authValidatePassword, authUsernameForm:
			if g.user.password == "" {
				return false
			}
		}
	}
	return true
}

var errInvalidCredentials = "Invalid user credentials"

// authenticate runs one direct grant authenticator with Keycloak's responses and event errors.
func (g *directGrant) authenticate(name, requirement string) *grantFailure {
	switch name {
	case authCookie, authIdPRedirect:
		// No SSO cookie and no identity provider in the simulator: the alternative does not apply.
		return &grantFailure{oe: oauthErr(http.StatusUnauthorized, "invalid_grant", errInvalidCredentials), eventErr: "invalid_user_credentials", attempted: true}
	case authUsernameForm:
		if fail := g.authenticate(authValidateUsername, requirement); fail != nil {
			return fail
		}
		return g.authenticate(authValidatePassword, requirement)
	case authOTPForm:
		if _, present := g.form["totp"]; g.interactive && !present && len(g.user.otp) > 0 {
			return &grantFailure{challenge: true}
		}
		return g.authenticate(authValidateOTP, requirement)
	case authValidateUsername:
		username := strings.ToLower(g.form.Get("username"))
		if username == "" {
			return &grantFailure{oe: oauthErr(http.StatusUnauthorized, "invalid_request", "Missing parameter: username"), eventErr: "user_not_found"}
		}
		u := g.r.userByUsername(username)
		if u == nil {
			for _, cand := range g.r.users {
				if cand.email != "" && cand.email == username {
					u = cand
					break
				}
			}
		}
		if u == nil || u.serviceAccountClientID != "" {
			return &grantFailure{oe: oauthErr(http.StatusUnauthorized, "invalid_grant", errInvalidCredentials), eventErr: "user_not_found"}
		}
		g.user = u
		if g.r.temporarilyLocked(u, g.now) {
			return &grantFailure{oe: oauthErr(http.StatusBadRequest, "invalid_grant", errInvalidCredentials), eventErr: "user_temporarily_disabled"}
		}
		if !u.enabled {
			return &grantFailure{oe: oauthErr(http.StatusBadRequest, "invalid_grant", "Account disabled"), eventErr: "user_disabled"}
		}
		return nil
	case authValidatePassword:
		pw := g.form.Get("password")
		if g.user.password == "" || subtle.ConstantTimeCompare([]byte(pw), []byte(g.user.password)) != 1 {
			return &grantFailure{oe: oauthErr(http.StatusUnauthorized, "invalid_grant", errInvalidCredentials), eventErr: "invalid_user_credentials", counts: true}
		}
		return nil
	case authValidateOTP:
		if len(g.user.otp) == 0 {
			if requirement == reqRequired {
				return &grantFailure{oe: oauthErr(http.StatusUnauthorized, "invalid_grant", errInvalidCredentials), eventErr: "invalid_user_credentials", counts: true}
			}
			return nil
		}
		code, present := g.form["totp"]
		if !present || !g.r.validOTP(g.user, code[0], g.now) {
			return &grantFailure{oe: oauthErr(http.StatusUnauthorized, "invalid_grant", errInvalidCredentials), eventErr: "invalid_user_credentials", counts: true}
		}
		return nil
	}
	return &grantFailure{oe: oauthErr(http.StatusInternalServerError, "unknown_error", ""), eventErr: "invalid_flow"}
}

// userHasRole reports whether u holds role, directly or through composites: "name" for a realm
// role, "clientId name" for a client role (Keycloak's role reference in condition configs).
func (r *realm) userHasRole(u *user, role string) bool {
	realmRoles, clientRoles := r.effectiveRoles(u)
	if clientID, name, ok := strings.Cut(role, " "); ok {
		return slices.Contains(clientRoles[clientID], name)
	}
	return slices.Contains(realmRoles, role)
}

// ---- loading ----

type flowExport struct {
	Alias                    string `json:"alias"`
	ProviderID               string `json:"providerId"`
	TopLevel                 bool   `json:"topLevel"`
	AuthenticationExecutions []struct {
		Authenticator       string `json:"authenticator"`
		AuthenticatorConfig string `json:"authenticatorConfig"`
		FlowAlias           string `json:"flowAlias"`
		Requirement         string `json:"requirement"`
		Priority            int    `json:"priority"`
	} `json:"authenticationExecutions"`
}

type authConfigExport struct {
	Alias  string            `json:"alias"`
	Config map[string]string `json:"config"`
}

type credentialExport struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	UserLabel      string `json:"userLabel"`
	CreatedDate    int64  `json:"createdDate"`
	Value          string `json:"value"`
	Temporary      bool   `json:"temporary"`
	SecretData     string `json:"secretData"`
	CredentialData string `json:"credentialData"`
}

// otpFromExport reads an exported OTP credential (secretData {"value"}, credentialData
// {"subType","digits","period","algorithm"}).
func otpFromExport(realmName, username string, ce credentialExport) (*otpCredential, error) {
	var secret struct {
		Value string `json:"value"`
	}
	var data struct {
		SubType   string `json:"subType"`
		Digits    int    `json:"digits"`
		Period    int    `json:"period"`
		Algorithm string `json:"algorithm"`
	}
	if err := json.Unmarshal([]byte(ce.SecretData), &secret); err != nil || secret.Value == "" {
		return nil, fmt.Errorf("realm %s: user %s: otp credential without secretData value", realmName, username)
	}
	if ce.CredentialData != "" {
		if err := json.Unmarshal([]byte(ce.CredentialData), &data); err != nil {
			return nil, fmt.Errorf("realm %s: user %s: otp credentialData: %w", realmName, username, err)
		}
	}
	if data.SubType != "" && data.SubType != "totp" {
		return nil, fmt.Errorf("realm %s: user %s: otp subType %q is not implemented (totp only)", realmName, username, data.SubType)
	}
	c := &otpCredential{
		id: orDefault(ce.ID, stableID(realmName, "otp", username, ce.UserLabel)), label: ce.UserLabel, created: ce.CreatedDate,
		secret: secret.Value, subType: "totp", digits: orInt(data.Digits, 6), period: orInt(data.Period, 30),
		algorithm: orDefault(data.Algorithm, "HmacSHA1"),
	}
	if _, err := otpAlgorithm(c.algorithm); err != nil {
		return nil, fmt.Errorf("realm %s: user %s: %w", realmName, username, err)
	}
	if _, err := otpDigits(c.digits); err != nil {
		return nil, fmt.Errorf("realm %s: user %s: %w", realmName, username, err)
	}
	return c, nil
}

// loadFlows reads the realm's flows and authenticator configs and checks that the direct grant
// flow uses only what the simulator implements.
func loadFlows(r *realm, flows []flowExport, configs []authConfigExport) error {
	r.flows = map[string]*authFlow{}
	r.authConfig = map[string]map[string]string{}
	for _, c := range configs {
		r.authConfig[c.Alias] = c.Config
	}
	for _, fe := range flows {
		f := &authFlow{alias: fe.Alias, topLevel: fe.TopLevel}
		for _, ee := range fe.AuthenticationExecutions {
			f.executions = append(f.executions, &execution{
				authenticator: ee.Authenticator, flowAlias: ee.FlowAlias, requirement: ee.Requirement,
				configAlias: ee.AuthenticatorConfig, priority: ee.Priority,
			})
		}
		sort.SliceStable(f.executions, func(i, j int) bool { return f.executions[i].priority < f.executions[j].priority })
		r.flows[f.alias] = f
	}
	if r.directGrantFlow == "" {
		r.directGrantFlow = builtinDirectGrant
	}
	if err := checkFlow(r, r.directGrantFlow, builtinDirectGrant, []string{authValidateUsername, authValidatePassword, authValidateOTP}); err != nil {
		return err
	}
	return checkFlow(r, r.browserFlow, builtinBrowser, []string{authCookie, authIdPRedirect, authUsernameForm, authOTPForm})
}

// checkFlow checks that the flow bound as alias (or the built-in one when alias is builtin and
// not defined) uses only the authenticators the simulator runs for that binding.
func checkFlow(r *realm, alias, builtin string, authenticators []string) error {
	root := r.flows[alias]
	if root == nil {
		if alias != builtin {
			return fmt.Errorf("realm %s: flow %q is bound but not defined", r.name, alias)
		}
		return nil
	}
	seen := map[string]bool{}
	var check func(f *authFlow) error
	check = func(f *authFlow) error {
		if seen[f.alias] {
			return fmt.Errorf("realm %s: flow %q is used twice in flow %q", r.name, f.alias, alias)
		}
		seen[f.alias] = true
		for _, e := range f.executions {
			switch e.requirement {
			case reqRequired, reqConditional, reqAlternative, reqDisabled:
			default:
				return fmt.Errorf("realm %s: flow %q: requirement %q is not implemented", r.name, f.alias, e.requirement)
			}
			if e.configAlias != "" && r.authConfig[e.configAlias] == nil {
				return fmt.Errorf("realm %s: flow %q: authenticator config %q is not defined", r.name, f.alias, e.configAlias)
			}
			if e.flowAlias != "" {
				sub := r.flows[e.flowAlias]
				if sub == nil {
					return fmt.Errorf("realm %s: flow %q: subflow %q is not defined", r.name, f.alias, e.flowAlias)
				}
				if err := check(sub); err != nil {
					return err
				}
				continue
			}
			switch {
			case slices.Contains(authenticators, e.authenticator), e.authenticator == condUserConfigured:
			case e.authenticator == condUserRole:
				if r.authConfig[e.configAlias]["condUserRole"] == "" {
					return fmt.Errorf("realm %s: flow %q: %s without condUserRole config", r.name, f.alias, condUserRole)
				}
			case e.requirement == reqDisabled:
			default:
				return fmt.Errorf("realm %s: flow %q: authenticator %q is not implemented by the simulator", r.name, f.alias, e.authenticator)
			}
		}
		return nil
	}
	return check(root)
}
