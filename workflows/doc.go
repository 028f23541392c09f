// Package workflows holds the durable Temporal workflows of IRU Responder
// and the names callers depend on: the task queue, workflow ids, signal,
// query and update names, and search attributes. Workflow code is
// deterministic and does no I/O; it reaches the world only through the
// activities declared in package activities.
package workflows
