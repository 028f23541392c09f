// Package severity is the platform's one severity vocabulary: the
// severities of alerts, incidents and playbooks, and their order.
package severity

import "slices"

// The severities, from most to least severe.
const (
	Critical = "critical"
	High     = "high"
	Medium   = "medium"
	Low      = "low"
	Info     = "info"
)

// ascending are the severities from least to most severe: a severity's
// index is its rank.
var ascending = []string{Info, Low, Medium, High, Critical}

// All returns the severities from most to least severe.
func All() []string {
	out := slices.Clone(ascending)
	slices.Reverse(out)
	return out
}

// Rank orders severities: critical 4, high 3, medium 2, low 1, info 0; -1
// for a string that is not a severity.
func Rank(s string) int { return slices.Index(ascending, s) }

// Valid reports whether s is one of the severities.
func Valid(s string) bool { return Rank(s) >= 0 }
