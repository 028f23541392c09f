package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/iru-responder/responder/activities/drillreport"
	"github.com/iru-responder/responder/workflows"
)

// DrillSource reads the drill schedules and the results of their recent
// runs; [TemporalDrills] reads them from Temporal.
type DrillSource interface {
	Drills(ctx context.Context) ([]DrillView, error)
}

// DrillView is one drill schedule with its recent runs.
type DrillView struct {
	// ID is the schedule id (workflows.DrillScheduleID), Name the drill's.
	ID, Name string
	Paused   bool
	Note     string
	// Schedule is the schedule's spec in words (cron expressions, intervals).
	Schedule string
	NextRun  time.Time
	// Runs are the recent runs, oldest first (Temporal keeps the last 10).
	Runs []DrillRun
}

// DrillRun is one run of a drill.
type DrillRun struct {
	WorkflowID, RunID string
	StartedAt         time.Time
	// Status is the run's execution status (Running, Completed, …).
	Status string
	// Report is the drill's report once the run completed (nil before, or
	// when it failed without one).
	Report *drillreport.Report
}

// Objectives returns the drill's objective names in the order of its
// newest report.
func (d DrillView) Objectives() []string {
	for i := len(d.Runs) - 1; i >= 0; i-- {
		if r := d.Runs[i].Report; r != nil {
			out := make([]string, 0, len(r.Objectives))
			for _, o := range r.Objectives {
				out = append(out, o.Name)
			}
			return out
		}
	}
	return nil
}

// Last is the newest run (zero without runs).
func (d DrillView) Last() DrillRun {
	if len(d.Runs) == 0 {
		return DrillRun{}
	}
	return d.Runs[len(d.Runs)-1]
}

// Objective returns the run's result for the named objective.
func (r DrillRun) Objective(name string) *drillreport.ObjectiveResult {
	if r.Report == nil {
		return nil
	}
	for i := range r.Report.Objectives {
		if r.Report.Objectives[i].Name == name {
			return &r.Report.Objectives[i]
		}
	}
	return nil
}

// TemporalDrills reads drill schedules and their runs' reports with a
// Temporal client (the API server's).
type TemporalDrills struct {
	Client client.Client
}

// maxDrillSchedules bounds the schedules the page lists.
const maxDrillSchedules = 100

// Drills implements DrillSource.
func (d TemporalDrills) Drills(ctx context.Context) ([]DrillView, error) {
	sc := d.Client.ScheduleClient()
	it, err := sc.List(ctx, client.ScheduleListOptions{PageSize: maxDrillSchedules})
	if err != nil {
		return nil, fmt.Errorf("console: list schedules: %w", err)
	}
	var ids []string
	for it.HasNext() && len(ids) < maxDrillSchedules {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("console: list schedules: %w", err)
		}
		if strings.HasPrefix(e.ID, workflows.DrillSchedulePrefix) {
			ids = append(ids, e.ID)
		}
	}
	slices.Sort(ids)
	var out []DrillView
	for _, id := range ids {
		desc, err := sc.GetHandle(ctx, id).Describe(ctx)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("console: describe schedule %s: %w", id, err)
		}
		v := DrillView{ID: id, Name: strings.TrimPrefix(id, workflows.DrillSchedulePrefix)}
		if st := desc.Schedule.State; st != nil {
			v.Paused, v.Note = st.Paused, st.Note
		}
		if sp := desc.Schedule.Spec; sp != nil {
			var parts []string
			for _, c := range sp.CronExpressions {
				parts = append(parts, "cron "+c)
			}
			// The server keeps cron expressions as calendars.
			for _, cal := range sp.Calendars {
				parts = append(parts, calendarText(cal))
			}
			for _, iv := range sp.Intervals {
				parts = append(parts, "every "+iv.Every.String())
			}
			v.Schedule = strings.Join(parts, ", ")
		}
		if len(desc.Info.NextActionTimes) > 0 {
			v.NextRun = desc.Info.NextActionTimes[0]
		}
		for _, a := range desc.Info.RecentActions {
			if a.StartWorkflowResult == nil {
				continue
			}
			v.Runs = append(v.Runs, d.run(ctx, a.StartWorkflowResult.WorkflowID, a.StartWorkflowResult.FirstExecutionRunID, a.ActualTime))
		}
		out = append(out, v)
	}
	return out, nil
}

// calendarText writes a schedule calendar as cron fields: "at 0 3 * * 1"
// (minute, hour, day of month, month, day of week; 0 is Sunday).
func calendarText(c client.ScheduleCalendarSpec) string {
	field := func(rs []client.ScheduleRange, lo, hi int) string {
		var out []string
		for _, r := range rs {
			end := max(r.End, r.Start)
			switch {
			case r.Start <= lo && end >= hi && r.Step <= 1:
				return "*"
			case end == r.Start:
				out = append(out, fmt.Sprint(r.Start))
			default:
				out = append(out, fmt.Sprintf("%d-%d", r.Start, end))
			}
			if r.Step > 1 {
				out[len(out)-1] += fmt.Sprintf("/%d", r.Step)
			}
		}
		if len(out) == 0 {
			return "*"
		}
		return strings.Join(out, ",")
	}
	t := "at " + strings.Join([]string{field(c.Minute, 0, 59), field(c.Hour, 0, 23), field(c.DayOfMonth, 1, 31),
		field(c.Month, 1, 12), field(c.DayOfWeek, 0, 6)}, " ")
	if c.Comment != "" {
		t += " (" + c.Comment + ")"
	}
	return t
}

// run reads one run's status and, once completed, its report.
func (d TemporalDrills) run(ctx context.Context, wfID, runID string, started time.Time) DrillRun {
	r := DrillRun{WorkflowID: wfID, RunID: runID, StartedAt: started, Status: "unknown"}
	desc, err := d.Client.DescribeWorkflow(ctx, wfID, runID)
	if err != nil {
		return r
	}
	st := desc.RawResponse.GetWorkflowExecutionInfo().GetStatus()
	r.Status = strings.TrimPrefix(st.String(), "WorkflowExecutionStatus")
	if st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		return r
	}
	var rep drillreport.Report
	if err := d.Client.GetWorkflow(ctx, wfID, runID).Get(ctx, &rep); err == nil {
		r.Report = &rep
	}
	return r
}

// drillsPage shows the drill schedules and their recent results, to the
// responder roles (the same that may read incidents).
func (c *Console) drillsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	if !sess.who().HasAnyRole(responderRoles...) {
		c.failPage(w, r, sess, &apiFailure{status: http.StatusForbidden, apiError: apiError{Error: "the drills page needs a responder role", Need: responderRoles}})
		return
	}
	pd := basePage(sess, "Drills")
	if c.drills == nil {
		pd.Error = "This API server has no Temporal client for drills."
		c.render(w, r, http.StatusOK, "drills", pd)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	views, err := c.drills.Drills(ctx)
	if err != nil {
		c.log.Error("console: drills", "err", err)
		c.failPage(w, r, sess, err)
		return
	}
	pd.Drills = views
	c.render(w, r, http.StatusOK, "drills", pd)
}
