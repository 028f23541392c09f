// Package workflows holds the durable Temporal workflows of IRU Responder
// and the names callers depend on, all declared in names.go: the task
// queue, workflow types, signal, query and update names, schedules,
// workflow ids, search attributes and the activities the workflows run for
// themselves (the playbook actions are named in package activities). The
// types of the incident workflow's refusals (Reject*) are declared in
// incident_messages.go. Workflow code is
// deterministic and does no I/O; it reaches the world only through the
// activities declared in package activities.
package workflows
