package workflows

// Names of the drill workflow, its activity and its schedules. The starter
// (drills sync, drill run), the worker and the workflow use these and
// nothing else.
const (
	// DrillWorkflow is the registered name of [Drill].
	DrillWorkflow = "Drill"
	// DrillReportActivity stores a drill report (Markdown and JSON) in the
	// evidence locker: [DrillReportInput] in, [DrillReportResult] out.
	DrillReportActivity = "drill.report"
)

// DrillSchedulePrefix starts the id of every drill schedule; `starter drills
// sync` owns (creates, updates and deletes) exactly the schedules with it.
const DrillSchedulePrefix = "drill:"

// DrillScheduleID is the id of the Temporal Schedule of the drill called
// name. The schedule also uses it as the workflow id of the drill runs (the
// server appends the scheduled time).
func DrillScheduleID(name string) string { return DrillSchedulePrefix + name }

// DrillRunWorkflowID is the workflow id of a drill started by hand
// (`starter drill run`); nonce makes it unique.
func DrillRunWorkflowID(name, nonce string) string {
	return DrillSchedulePrefix + name + ":run-" + nonce
}

// Identities of a drill.
const (
	// DrillApproverSubject is the subject of the identity that approves the
	// steps a drill lists in auto_approve.
	DrillApproverSubject = "system:drill"
	// DrillApproverUsername is that identity's username.
	DrillApproverUsername = "drill"
	// DrillOpenedBy opens drill incidents. It differs from the approver so
	// that the four-eyes rule holds for drill approvals too.
	DrillOpenedBy = "system:drill-scheduler"
)
