package console

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"

	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/internal/auth"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// pages are the parsed templates, one set per page (each with the layout).
type pages map[string]*template.Template

var funcs = template.FuncMap{
	"incURL": func(key string) string { return Prefix + "/incidents/" + url.PathEscape(key) },
	"stepURL": func(key, step, decision string) string {
		return Prefix + "/incidents/" + url.PathEscape(key) + "/steps/" + url.PathEscape(step) + "/" + decision
	},
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"dur": func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return ""
		}
		return b.Sub(a).Round(time.Second).String()
	},
	"join": strings.Join,
	// responderRoles are the ir-* roles of a role list (what the console
	// shows of who someone is).
	"responderRoles": func(roles []string) []string {
		var out []string
		for _, r := range roles {
			if strings.HasPrefix(r, "ir-") {
				out = append(out, r)
			}
		}
		return out
	},
}

func parsePages() (pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pg := pages{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		pg[base] = t
	}
	return pg, nil
}

// pageData is what every page gets.
type pageData struct {
	Title  string
	User   *auth.Identity
	CSRF   string
	Flash  string
	Error  string
	SignIn bool
	Next   string
	// Live is the Server-Sent Events URL the page's live part follows.
	Live string

	List      *listView
	Room      *roomView
	Report    template.HTML
	Key       string
	Playbooks []playbookView
	Drills    []DrillView
	Trends    *trendsView
	// Page is the template's name (the navigation marks it current).
	Page string
}

func (c *Console) render(w http.ResponseWriter, _ *http.Request, status int, page string, d pageData) {
	d.Page = page
	var buf bytes.Buffer
	if err := c.pages[page].Execute(&buf, d); err != nil {
		c.log.Error("console: render", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders the live part of a page (a template named "live").
func (c *Console) fragment(page string, d pageData) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "live", d); err != nil {
		return nil, fmt.Errorf("console: render %s live part: %w", page, err)
	}
	return buf.Bytes(), nil
}

// basePage is the page data of a signed-in person.
func basePage(sess *session, title string) pageData {
	id := sess.who()
	return pageData{Title: title, User: &id, CSRF: sess.csrf, Flash: sess.takeFlash()}
}

// failPage answers an API failure as a page.
func (c *Console) failPage(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status := statusOf(err)
	if status == http.StatusBadGateway {
		c.log.Error("console: API call", "path", r.URL.Path, "err", err)
	}
	d := basePage(sess, "Error")
	d.Error = err.Error()
	d.SignIn = status == http.StatusUnauthorized
	c.render(w, r, status, "error", d)
}

// ---- incidents list ----

// listFilters are the list page's filters, passed to GET /incidents.
var listFilters = []string{"state", "severity", "playbook", "asset", "phase"}

// listView is the incidents list.
type listView struct {
	Filters   map[string]string
	Incidents []listItem
	Phases    []string
}

// listItem is one incident of the list.
type listItem struct {
	api.IncidentSummary
	// MustAct names who has to decide next ("ir-lead: approve shutdown").
	MustAct []string
	Age     string
}

// listData is what the list's live reader loads: the list and, for open
// incidents, their status (for who must act).
type listData struct {
	List     api.IncidentList            `json:"list"`
	Statuses map[string]api.IncidentView `json:"statuses"`
}

// listPath is the API path of the list filters in q.
func listPath(q url.Values) (string, map[string]string) {
	v, f := url.Values{}, map[string]string{}
	for _, k := range listFilters {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			v.Set(k, s)
			f[k] = s
		}
	}
	if _, ok := f["state"]; !ok {
		f["state"] = ""
	}
	v.Set("limit", "100")
	return api.APIPrefix + "/incidents?" + v.Encode(), f
}

// loadList reads the list and the status of each open incident.
func (c *Console) loadList(ctx context.Context, remote string, sess *session, path string) (listData, error) {
	ans, err := c.call(ctx, remote, sess, http.MethodGet, path, nil)
	if err != nil {
		return listData{}, err
	}
	var d listData
	if err := ans.decode(&d.List); err != nil {
		return listData{}, err
	}
	d.Statuses = map[string]api.IncidentView{}
	for _, in := range d.List.Incidents {
		if !in.Open {
			continue
		}
		a, err := c.call(ctx, remote, sess, http.MethodGet, api.APIPrefix+"/incidents/"+url.PathEscape(in.ID), nil)
		if err != nil {
			return listData{}, err
		}
		var v api.IncidentView
		if a.decode(&v) == nil {
			d.Statuses[in.ID] = v
		}
	}
	return d, nil
}

// listOf builds the list view: open incidents first, newest first.
func listOf(d listData, filters map[string]string, now time.Time) *listView {
	lv := &listView{Filters: filters, Phases: playbooks.Phases}
	for _, in := range d.List.Incidents {
		it := listItem{IncidentSummary: in, Age: now.Sub(in.StartedAt).Round(time.Second).String()}
		if v, ok := d.Statuses[in.ID]; ok {
			it.MustAct = mustAct(v.Status)
			it.Phase = cmp.Or(v.Status.Phase, it.Phase)
			it.Severity = cmp.Or(it.Severity, v.Status.Severity)
			it.Playbook = cmp.Or(it.Playbook, v.Status.Playbook)
			it.Asset = cmp.Or(it.Asset, v.Status.Asset)
		}
		lv.Incidents = append(lv.Incidents, it)
	}
	slices.SortStableFunc(lv.Incidents, func(a, b listItem) int {
		if a.Open != b.Open {
			if a.Open {
				return -1
			}
			return 1
		}
		return b.StartedAt.Compare(a.StartedAt)
	})
	return lv
}

// mustAct lists the pending approvals of st as "roles: step (n/quorum)".
func mustAct(st api.StatusView) []string {
	var out []string
	for _, s := range st.Steps {
		if s.Status == workflows.StepWaitingApproval && s.Approval != nil {
			out = append(out, fmt.Sprintf("%s: approve %s (%d/%d)", strings.Join(s.Approval.Roles, " or "), s.ID, len(s.Approval.Approvals), s.Approval.Quorum))
		}
	}
	return out
}

// index is the incidents list, or the sign-in page without a session.
func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	sess, ok := c.store.get(r)
	if !ok {
		c.render(w, r, http.StatusOK, "signin", pageData{Title: "Sign in", SignIn: true})
		return
	}
	path, filters := listPath(r.URL.Query())
	d, err := c.loadList(r.Context(), r.RemoteAddr, sess, path)
	if err != nil {
		c.failPage(w, r, sess, err)
		return
	}
	pd := basePage(sess, "Incidents")
	pd.List = listOf(d, filters, c.now())
	pd.Live = Prefix + "/events?" + r.URL.Query().Encode()
	c.render(w, r, http.StatusOK, "list", pd)
}

// ---- incident room ----

// roomView is the incident room.
type roomView struct {
	api.IncidentView
	Phases   []phaseView
	Steps    []stepView
	Evidence []evidenceItem
	Related  []api.IncidentSummary
	// May are the incident-wide actions the viewer's roles allow
	// (notes, acknowledge, escalate, abort), for an open incident.
	May map[string]bool
}

// phaseView is one box of the progress strip.
type phaseView struct {
	Name  string
	State string // done, current, todo
}

// stepView is a step with what the viewer may do about it.
type stepView struct {
	api.StepView
	Duration string
	// MayDecide: the step waits for approval and the viewer holds one of
	// its roles (the API and the workflow decide anyway).
	MayDecide bool
	// NeedsMFA: approving needs a second factor the viewer's sign-in lacks.
	NeedsMFA bool
	// FourEyes: the viewer already approved (another person must).
	FourEyes bool
}

// evidenceItem is one object of the evidence manifest.
type evidenceItem struct {
	Name, Class, SHA256, Retention string
	Size                           int64
	Deleted                        bool
}

// roomData is what the room's live reader loads.
type roomData struct {
	Incident api.IncidentView `json:"incident"`
}

func phasesOf(st api.StatusView) []phaseView {
	cur := slices.Index(playbooks.Phases, st.Phase)
	out := make([]phaseView, 0, len(playbooks.Phases))
	for i, p := range playbooks.Phases {
		state := "todo"
		switch {
		case i < cur || (st.State == workflows.StateResolved && i <= cur):
			state = "done"
		case i == cur:
			state = "current"
		}
		out = append(out, phaseView{Name: p, State: state})
	}
	return out
}

// roomOf builds the room for viewer id.
func roomOf(v api.IncidentView, id auth.Identity) *roomView {
	rv := &roomView{IncidentView: v, Phases: phasesOf(v.Status), May: map[string]bool{}}
	for name, a := range incidentActions {
		rv.May[name] = id.HasAnyRole(a.Roles...) && (name == "notes" || v.Status.State == workflows.StateOpen)
	}
	for _, s := range v.Status.Steps {
		sv := stepView{StepView: s, Duration: durOf(s.StartedAt, s.FinishedAt)}
		if s.Status == workflows.StepWaitingApproval && s.Approval != nil && id.HasAnyRole(s.Approval.Roles...) {
			sv.MayDecide = true
			sv.NeedsMFA = (s.Risk == playbooks.RiskHigh || slices.Contains(s.Approval.Roles, auth.RoleAdmin)) && !id.HasSecondFactor()
			sv.FourEyes = slices.ContainsFunc(s.Approval.Approvals, func(d api.DecisionView) bool { return d.By.Username == id.Username })
		}
		rv.Steps = append(rv.Steps, sv)
	}
	slices.Reverse(rv.Status.Timeline) // newest first
	return rv
}

func durOf(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return ""
	}
	return b.Sub(a).Round(time.Millisecond).String()
}

func incidentPath(key string) string { return api.APIPrefix + "/incidents/" + url.PathEscape(key) }

func (c *Console) loadRoom(ctx context.Context, remote string, sess *session, key string) (roomData, error) {
	ans, err := c.call(ctx, remote, sess, http.MethodGet, incidentPath(key), nil)
	if err != nil {
		return roomData{}, err
	}
	var d roomData
	return d, ans.decode(&d.Incident)
}

// manifestAnswer is the answer of GET /evidence.
type manifestAnswer struct {
	Manifest evidence.Manifest `json:"manifest"`
}

// room is the incident room.
func (c *Console) room(w http.ResponseWriter, r *http.Request, sess *session) {
	key := r.PathValue("id")
	d, err := c.loadRoom(r.Context(), r.RemoteAddr, sess, key)
	if err != nil {
		c.failPage(w, r, sess, err)
		return
	}
	pd := basePage(sess, d.Incident.Status.IncidentID+" "+d.Incident.Status.Playbook)
	pd.Key = key
	pd.Room = roomOf(d.Incident, sess.who())
	if ans, err := c.call(r.Context(), r.RemoteAddr, sess, http.MethodGet, incidentPath(key)+"/evidence", nil); err == nil {
		var m manifestAnswer
		if ans.decode(&m) == nil {
			for _, o := range m.Manifest.Objects {
				pd.Room.Evidence = append(pd.Room.Evidence, evidenceItem{Name: o.Name, Class: string(o.Class), SHA256: o.SHA256, Size: o.Size,
					Retention: o.RetainUntil.UTC().Format(time.DateOnly), Deleted: o.Deleted})
			}
		}
	}
	if asset := d.Incident.Status.Asset; asset != "" {
		if ans, err := c.call(r.Context(), r.RemoteAddr, sess, http.MethodGet, api.APIPrefix+"/incidents?"+url.Values{"asset": {asset}, "limit": {"20"}}.Encode(), nil); err == nil {
			var l api.IncidentList
			if ans.decode(&l) == nil {
				for _, in := range l.Incidents {
					if in.ID != key {
						pd.Room.Related = append(pd.Room.Related, in)
					}
				}
			}
		}
	}
	pd.Live = Prefix + "/incidents/" + url.PathEscape(key) + "/events"
	c.render(w, r, http.StatusOK, "room", pd)
}

// decisions are the decisions the room's forms post.
var decisions = map[string]bool{"approve": true, "deny": true}

// decide posts an approval or denial to the API's own route: the API
// checks the token, the session, the second factor and signs the
// statement; the workflow checks role, quorum and four-eyes.
func (c *Console) decide(w http.ResponseWriter, r *http.Request, sess *session) {
	key, step, dec := r.PathValue("id"), r.PathValue("step"), r.PathValue("decision")
	if !decisions[dec] {
		c.failPage(w, r, sess, &apiFailure{status: http.StatusNotFound, apiError: apiError{Error: "unknown decision " + dec}})
		return
	}
	body := map[string]string{"reason": r.PostForm.Get("reason")}
	ans, err := c.call(r.Context(), r.RemoteAddr, sess, http.MethodPost, incidentPath(key)+"/steps/"+url.PathEscape(step)+"/"+dec, body)
	if err == nil {
		var res api.DecisionAnswer
		err = ans.decode(&res)
		if err == nil {
			sess.setFlash(fmt.Sprintf("%s of %s recorded: the step is %s (%d of %d approvals)", dec, step, res.Result.Status, res.Result.Approvals, res.Result.Quorum))
			http.Redirect(w, r, Prefix+"/incidents/"+url.PathEscape(key), http.StatusSeeOther)
			return
		}
	}
	c.log.Warn("console: decision refused", "user", sess.who().Username, "incident", key, "step", step, "decision", dec, "err", err)
	c.failPage(w, r, sess, err)
}

// incidentAction is a form of the room that acts on the whole incident
// through the responder API's route of the same name.
type incidentAction struct {
	// Roles may use it (what the API's route requires; the console only
	// hides the form from others, the API refuses them anyway).
	Roles []string
	// Field is the form field the API body is made of, and JSONField its
	// name in the body.
	Field, JSONField string
	// Required: the field must not be empty.
	Required bool
	// Done is the flash after the API accepted it.
	Done string
}

// responderRoles may read an incident, note, acknowledge and escalate;
// leadRoles may also abort (the API's readRoles and abortRoles).
var (
	responderRoles = []string{auth.RoleResponder, auth.RoleLead, auth.RoleAdmin}
	leadRoles      = []string{auth.RoleLead, auth.RoleAdmin}
)

// incidentActions are the room's incident-wide forms, by the last
// element of their path (the API's route under /incidents/{id}).
var incidentActions = map[string]incidentAction{
	"notes":       {Roles: responderRoles, Field: "text", JSONField: "text", Required: true, Done: "Note added to the evidence"},
	"acknowledge": {Roles: responderRoles, Field: "reason", JSONField: "reason", Done: "Incident acknowledged"},
	"escalate":    {Roles: responderRoles, Field: "reason", JSONField: "reason", Done: "Incident escalated"},
	"abort":       {Roles: leadRoles, Field: "reason", JSONField: "reason", Required: true, Done: "Abort requested: the compensations run"},
}

// act posts a note, an acknowledgement, an escalation or an abort to the
// API's route: the API checks the roles, the live session and signs the
// statement; the workflow records it in the ledger.
func (c *Console) act(w http.ResponseWriter, r *http.Request, sess *session) {
	key, name := r.PathValue("id"), r.PathValue("action")
	a, ok := incidentActions[name]
	if !ok {
		c.failPage(w, r, sess, &apiFailure{status: http.StatusNotFound, apiError: apiError{Error: "unknown action " + name}})
		return
	}
	text := strings.TrimSpace(r.PostForm.Get(a.Field))
	if a.Required && text == "" {
		c.failPage(w, r, sess, &apiFailure{status: http.StatusBadRequest, apiError: apiError{Error: a.Field + ": required"}})
		return
	}
	ans, err := c.call(r.Context(), r.RemoteAddr, sess, http.MethodPost, incidentPath(key)+"/"+name, map[string]string{a.JSONField: text})
	if err == nil && ans.status/100 != 2 {
		err = ans.err()
	}
	if err != nil {
		c.log.Warn("console: action refused", "user", sess.who().Username, "incident", key, "action", name, "err", err)
		c.failPage(w, r, sess, err)
		return
	}
	sess.setFlash(a.Done + ".")
	http.Redirect(w, r, Prefix+"/incidents/"+url.PathEscape(key), http.StatusSeeOther)
}

// report renders the post-incident report (Markdown from the API's report
// route, which reads it from the evidence locker and records the read in
// its chain of custody). Raw HTML in the Markdown is not rendered.
func (c *Console) report(w http.ResponseWriter, r *http.Request, sess *session) {
	key := r.PathValue("id")
	ans, err := c.call(r.Context(), r.RemoteAddr, sess, http.MethodGet, incidentPath(key)+"/report?format=markdown", nil)
	if err == nil && ans.status != http.StatusOK {
		err = ans.err()
	}
	if err != nil {
		c.failPage(w, r, sess, err)
		return
	}
	var out bytes.Buffer
	if err := goldmark.New(goldmark.WithExtensions(extension.GFM)).Convert(ans.body.Bytes(), &out); err != nil {
		c.failPage(w, r, sess, fmt.Errorf("console: render report: %w", err))
		return
	}
	pd := basePage(sess, "Report "+key)
	pd.Key = key
	// Wide tables scroll in their own box instead of widening the page.
	html := strings.NewReplacer("<table>", `<div class="table-wrap"><table>`, "</table>", "</table></div>").Replace(out.String())
	pd.Report = template.HTML(html) //nolint:gosec // goldmark without html.WithUnsafe escapes raw HTML
	c.render(w, r, http.StatusOK, "report", pd)
}

// download streams one evidence object from the API's evidence route,
// which verifies it and records the read in the chain of custody.
func (c *Console) download(w http.ResponseWriter, r *http.Request, sess *session) {
	req, err := c.apiRequest(r.Context(), r.RemoteAddr, sess, http.MethodGet, incidentPath(r.PathValue("id"))+"/evidence/"+url.PathEscape(r.PathValue("sha256")), nil)
	if err != nil {
		c.failPage(w, r, sess, err)
		return
	}
	c.api.ServeHTTP(w, req)
}
