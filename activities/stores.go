package activities

import (
	"context"
	"io"
	"sort"

	"go.temporal.io/sdk/activity"
)

// Data classes of evidence, from the hardening guide's classification; the
// evidence locker keeps each class for its own retention period.
const (
	ClassPII         = "pii"
	ClassFinancial   = "financial"
	ClassOperational = "operational"
)

// EvidenceItem is one piece of evidence an activity hands to the store.
type EvidenceItem struct {
	IncidentID  string
	Name        string // e.g. "pve/api-gateway/config.json"
	Class       string // ClassPII, ClassFinancial or ClassOperational
	MediaType   string // e.g. "application/json"
	CollectedBy string // the actor, e.g. "system:worker"
	Source      string // where it came from, e.g. "pve:pve1/lxc/101"
	Body        io.Reader
}

// EvidenceStore keeps evidence and returns a reference to it. Activities
// return references, never content, so workflow payloads stay small.
// The evidence locker implements it.
type EvidenceStore interface {
	PutEvidence(ctx context.Context, item EvidenceItem) (ref string, err error)
}

// SecretItem is a newly minted secret (client secret, API token).
type SecretItem struct {
	Name  string // e.g. "keycloak/iru/iru-api/client-secret"
	Value []byte
}

// SecretSink stores new secrets and returns a reference. A secret never
// appears in workflow history, logs or errors in clear text.
type SecretSink interface {
	StoreSecret(ctx context.Context, item SecretItem) (ref string, err error)
}

// Func is the uniform signature of every playbook action's implementation.
type Func = func(context.Context, ActionInput) (ActionResult, error)

// Registry is the part of a Temporal worker that registers activities.
type Registry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// RegisterAll registers each action implementation under its catalog name,
// with no retry policy of its own: the workflow uses the catalog's
// recommended options.
func RegisterAll(r Registry, byName map[string]Func) {
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.RegisterActivityWithOptions(byName[n], activity.RegisterOptions{Name: n})
	}
}
