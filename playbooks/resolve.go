package playbooks

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// ResolveActivity is the registered name of [Resolver.Resolve]. The incident
// workflow runs it as a local activity once, at the start of an incident, so
// the resolved playbook is recorded in history: replays and later runs
// (continue-as-new carries it) never depend on the worker's current files.
const ResolveActivity = "playbook.resolve"

// ResolveInput names the playbook to resolve.
type ResolveInput struct {
	Name string
	// Version "" resolves the highest version.
	Version string
}

// ResolveResult is the resolved, validated playbook.
type ResolveResult struct {
	Playbook Playbook
}

// Resolver resolves playbooks from a loaded [Set]. Register it on the worker:
//
//	w.RegisterActivityWithOptions((&playbooks.Resolver{Set: set}).Resolve,
//		activity.RegisterOptions{Name: playbooks.ResolveActivity})
type Resolver struct {
	Set *Set
}

// Resolve implements [ResolveActivity]. An unknown playbook is a final
// (non-retryable) error of type [activities.ErrTypeNotFound].
func (r *Resolver) Resolve(_ context.Context, in ResolveInput) (ResolveResult, error) {
	p, err := r.Set.Get(in.Name, in.Version)
	if errors.Is(err, ErrNotFound) {
		return ResolveResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeNotFound, err)
	}
	if err != nil {
		return ResolveResult{}, fmt.Errorf("resolve playbook: %w", err)
	}
	return ResolveResult{Playbook: *p}, nil
}
