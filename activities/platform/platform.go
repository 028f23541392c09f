// Package platform implements the activities that act on the platform
// itself rather than on Proxmox VE or Keycloak: appending to the audit
// ledger (and signing its checkpoint when an incident closes), notifying
// people, opening regulatory notifications with their deadline, and writing
// the post-incident report.
package platform

import (
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/evidence"
	"github.com/iru-responder/responder/internal/ledger"
	"github.com/iru-responder/responder/internal/notify"
)

// Activities holds the platform activities' dependencies.
type Activities struct {
	Ledger   *ledger.Ledger
	Signer   ledger.Signer
	Verifier ledger.Verifier
	Evidence *evidence.Locker
	Sink     activities.EvidenceStore
	Notifier *notify.Notifier
	// IncidentLink, if set, returns the address (in the Web UI) that a
	// notification about an incident links to.
	IncidentLink func(incidentID string) string
	Now          func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Register registers the activities under their catalog names.
func (a *Activities) Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	r.RegisterActivityWithOptions(a.LedgerAppend, activity.RegisterOptions{Name: activities.LedgerAppend})
	r.RegisterActivityWithOptions(a.LedgerAppendBatch, activity.RegisterOptions{Name: activities.LedgerAppendBatch})
	r.RegisterActivityWithOptions(a.NotifySend, activity.RegisterOptions{Name: activities.NotifySend})
	r.RegisterActivityWithOptions(a.ComplianceNotify, activity.RegisterOptions{Name: activities.ComplianceNotify})
	r.RegisterActivityWithOptions(a.ReportGenerate, activity.RegisterOptions{Name: activities.ReportGenerate})
}
