// Package activities is the contract between workflows and the activities
// that act on the world: activity names, their input and output structs,
// and the options each one should be run with (catalog.go), and each
// playbook action's parameters, one struct per action (params.go).
//
// Workflows import this package only; the implementations live in the
// sub-packages (one per external system) and are registered by the worker
// under the names declared here, so workflow code never imports a client
// library.
package activities
