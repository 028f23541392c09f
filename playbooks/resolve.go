package playbooks

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

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

// Resolver resolves playbooks from a loaded [Set]. The incident workflow
// runs [Resolver.Resolve] as a local activity once, at the start of an
// incident, so the resolved playbook is recorded in history: replays and
// later runs (continue-as-new carries it) never depend on the worker's
// current files. Register it on the worker under workflows.ResolveActivity:
//
//	w.RegisterActivityWithOptions((&playbooks.Resolver{Set: set}).Resolve,
//		activity.RegisterOptions{Name: workflows.ResolveActivity})
type Resolver struct {
	Set *Set
}

// Resolve resolves in.Name at in.Version. An unknown playbook is a final
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
