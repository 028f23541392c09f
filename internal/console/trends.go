package console

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/iru-responder/responder/internal/api"
	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

// Chart geometry (SVG user units): a label column, then the bars, then
// the value; the SVG scales to its box (viewBox), so it never overflows.
const (
	chartWidth  = 480
	chartLabelW = 150
	chartBarW   = 250
	chartRowH   = 22
	chartBarH   = 14
	// maxLabel is the longest label that fits its column (longer ones are
	// cut; the chart's title has them whole).
	maxLabel = 22
)

// chart is one horizontal bar chart, drawn by the server as SVG.
type chart struct {
	ID, Title string
	// Unit names what the values count ("minutes (mean)", "incidents").
	Unit string
	Bars []bar
}

// bar is one bar with its geometry.
type bar struct {
	Label string
	// Short is Label cut to its column.
	Short string
	Value float64
	Text  string
	// Y is the row's top; W the bar's width.
	Y, W float64
	// Tone is ok, warn or bad (the bar's colour class).
	Tone string
}

// Height is the SVG's height.
func (c chart) Height() int { return max(1, len(c.Bars))*chartRowH + 4 }

// layout computes the bars' geometry from their values.
func (c chart) layout() chart {
	hi := 0.0
	for _, b := range c.Bars {
		hi = max(hi, b.Value)
	}
	for i := range c.Bars {
		c.Bars[i].Y = float64(i * chartRowH)
		if hi > 0 {
			c.Bars[i].W = c.Bars[i].Value / hi * chartBarW
		}
		if r := []rune(c.Bars[i].Label); len(r) > maxLabel {
			c.Bars[i].Short = string(r[:maxLabel-1]) + "…"
		} else {
			c.Bars[i].Short = c.Bars[i].Label
		}
		if c.Bars[i].Tone == "" {
			c.Bars[i].Tone = "ok"
		}
	}
	return c
}

// trendsView is the trends page.
type trendsView struct {
	// Incidents counts the incidents the figures are computed from.
	Incidents int
	Charts    []chart
	Waiting   []waitingApproval
}

// waitingApproval is a step waiting for people, with its age.
type waitingApproval struct {
	Key, IncidentID, Step, Roles string
	Age                          time.Duration
}

// meanOf is a running mean.
type meanOf struct {
	sum float64
	n   int
}

func (m *meanOf) add(v float64) { m.sum += v; m.n++ }

// groupMeans are means per group (week or playbook), groups sorted.
type groupMeans map[string]*meanOf

func (g groupMeans) add(group string, v float64) {
	if g[group] == nil {
		g[group] = &meanOf{}
	}
	g[group].add(v)
}

// bars returns one bar per group, in group order, values in minutes.
func (g groupMeans) bars() []bar {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]bar, 0, len(keys))
	for _, k := range keys {
		m := g[k].sum / float64(g[k].n) / 60
		out = append(out, bar{Label: k, Value: m, Text: fmt.Sprintf("%.1f min (%d)", m, g[k].n)})
	}
	return out
}

// timeToDetect is from the earliest alert's observation to the incident's
// opening (0, false without an observation time).
func timeToDetect(st api.StatusView) (time.Duration, bool) {
	var first time.Time
	for _, a := range st.Alerts {
		if !a.ObservedAt.IsZero() && (first.IsZero() || a.ObservedAt.Before(first)) {
			first = a.ObservedAt
		}
	}
	if first.IsZero() || st.OpenedAt.Before(first) {
		return 0, false
	}
	return st.OpenedAt.Sub(first), true
}

// weekOf is the ISO week of t, as "2026-W49".
func weekOf(t time.Time) string {
	y, w := t.UTC().ISOWeek()
	return fmt.Sprintf("%d-W%02d", y, w)
}

// trendsOf computes the trends of incidents (drills excluded from the
// response-time figures) and drill runs at now.
func trendsOf(incidents []api.IncidentView, drillViews []DrillView, now time.Time) trendsView {
	tv := trendsView{}
	detect, contain, recover := groupMeans{}, groupMeans{}, groupMeans{}
	pbContain, pbRecover := groupMeans{}, groupMeans{}
	openByPhase := map[string]int{}
	for _, v := range incidents {
		st := v.Status
		if st.State == workflows.StateOpen {
			openByPhase[st.Phase]++
			for _, s := range st.Steps {
				if s.Status == workflows.StepWaitingApproval && s.Approval != nil {
					since := cmp.Or(s.StartedAt, st.OpenedAt)
					tv.Waiting = append(tv.Waiting, waitingApproval{Key: v.ID, IncidentID: st.IncidentID, Step: s.ID,
						Roles: strings.Join(s.Approval.Roles, " or "), Age: now.Sub(since).Round(time.Second)})
				}
			}
		}
		if st.Drill {
			continue
		}
		tv.Incidents++
		week := weekOf(st.OpenedAt)
		if d, ok := timeToDetect(st); ok {
			detect.add(week, d.Seconds())
		}
		if s := st.Metrics.TimeToContainSeconds; s > 0 {
			contain.add(week, s)
			pbContain.add(st.Playbook, s)
		}
		if s := st.Metrics.TimeToRecoverSeconds; s > 0 {
			recover.add(week, s)
			pbRecover.add(st.Playbook, s)
		}
	}
	var phaseBars []bar
	for _, p := range playbooks.Phases {
		phaseBars = append(phaseBars, bar{Label: p, Value: float64(openByPhase[p]), Text: fmt.Sprint(openByPhase[p])})
	}
	slices.SortFunc(tv.Waiting, func(a, b waitingApproval) int { return cmp.Compare(b.Age, a.Age) })
	var waitBars []bar
	for _, w := range tv.Waiting {
		tone := "ok"
		switch {
		case w.Age > time.Hour:
			tone = "bad"
		case w.Age > 15*time.Minute:
			tone = "warn"
		}
		waitBars = append(waitBars, bar{Label: w.IncidentID + " " + w.Step, Value: w.Age.Minutes(), Text: w.Age.String(), Tone: tone})
	}
	var drillBars []bar
	for _, d := range drillViews {
		for _, r := range d.Runs {
			if r.Report == nil || len(r.Report.Objectives) == 0 {
				continue
			}
			met := 0
			for _, o := range r.Report.Objectives {
				if o.Pass {
					met++
				}
			}
			tone := "ok"
			if met < len(r.Report.Objectives) {
				tone = "bad"
			}
			pct := 100 * float64(met) / float64(len(r.Report.Objectives))
			drillBars = append(drillBars, bar{Label: d.Name + " " + r.StartedAt.UTC().Format("01-02"), Value: pct,
				Text: fmt.Sprintf("%d/%d met", met, len(r.Report.Objectives)), Tone: tone})
		}
	}
	for _, c := range []chart{
		{ID: "detect-week", Title: "Time to detect, per week", Unit: "minutes from the detector's observation to the incident (mean, incidents)", Bars: detect.bars()},
		{ID: "contain-week", Title: "Time to contain, per week", Unit: "minutes (mean, incidents)", Bars: contain.bars()},
		{ID: "recover-week", Title: "Time to recover, per week", Unit: "minutes (mean, incidents)", Bars: recover.bars()},
		{ID: "contain-playbook", Title: "Time to contain, per playbook", Unit: "minutes (mean, incidents)", Bars: pbContain.bars()},
		{ID: "recover-playbook", Title: "Time to recover, per playbook", Unit: "minutes (mean, incidents)", Bars: pbRecover.bars()},
		{ID: "open-phase", Title: "Open incidents by phase", Unit: "incidents", Bars: phaseBars},
		{ID: "approvals-waiting", Title: "Approvals waiting, by age", Unit: "minutes waiting (over 15 min amber, over 1 h red)", Bars: waitBars},
		{ID: "drill-objectives", Title: "Drill objectives met, per run", Unit: "% of the run's objectives met", Bars: drillBars},
	} {
		tv.Charts = append(tv.Charts, c.layout())
	}
	return tv
}

// maxTrendIncidents bounds the incidents one trends page reads.
const maxTrendIncidents = 100

// loadIncidents reads the newest incidents and the status of each, with
// the session's token (the API decides what it may read).
func (c *Console) loadIncidents(ctx context.Context, remote string, sess *session) ([]api.IncidentView, error) {
	ans, err := c.call(ctx, remote, sess, http.MethodGet, api.APIPrefix+"/incidents?"+url.Values{"limit": {fmt.Sprint(maxTrendIncidents)}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	var l api.IncidentList
	if err := ans.decode(&l); err != nil {
		return nil, err
	}
	out := make([]api.IncidentView, 0, len(l.Incidents))
	for _, in := range l.Incidents {
		a, err := c.call(ctx, remote, sess, http.MethodGet, incidentPath(in.ID), nil)
		if err != nil {
			return nil, err
		}
		var v api.IncidentView
		if a.decode(&v) == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// trendsPage draws the trends of the newest incidents and drill runs.
func (c *Console) trendsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	views, err := c.loadIncidents(ctx, r.RemoteAddr, sess)
	if err != nil {
		c.failPage(w, r, sess, err)
		return
	}
	var dv []DrillView
	if c.drills != nil && sess.who().HasAnyRole(responderRoles...) {
		if dv, err = c.drills.Drills(ctx); err != nil {
			c.log.Warn("console: trends: drills", "err", err)
		}
	}
	pd := basePage(sess, "Trends")
	tv := trendsOf(views, dv, c.now())
	pd.Trends = &tv
	c.render(w, r, http.StatusOK, "trends", pd)
}
