// Package workerhost assembles the platform's worker: it registers every
// workflow and activity under the names declared in packages workflows and
// activities, with the dependencies built from configuration.
package workerhost

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/activities/selftest"
	"github.com/iru-responder/responder/workflows"
)

// Registry is the part of worker.Worker that registration needs.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Deps are the dependencies of the activities.
type Deps struct {
	SelfTest *selftest.Activities
}

// Register registers the platform's workflows and activities on r.
func Register(r Registry, d Deps) {
	r.RegisterWorkflowWithOptions(workflows.SelfTest, workflow.RegisterOptions{Name: workflows.SelfTestWorkflow})
	st := d.SelfTest
	if st == nil {
		st = &selftest.Activities{}
	}
	r.RegisterActivityWithOptions(st.SelfTestProbe, activity.RegisterOptions{Name: activities.SelfTestProbe})
}
