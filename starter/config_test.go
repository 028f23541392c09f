package main

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEConfigReference keeps the README's configuration reference
// equal to `starter config`: a new variable cannot be left undocumented.
func TestREADMEConfigReference(t *testing.T) {
	want, err := configReference()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- config:begin -->\n", "<!-- config:end -->"
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", begin, end)
	}
	if got := s[i+len(begin) : j]; got != want {
		t.Errorf("README.md configuration reference is stale; regenerate it with `go run ./starter config` between the markers.\n--- want ---\n%s", want)
	}
	for _, sec := range configSections() {
		for _, c := range sec.Cfgs {
			if strings.Contains(want, "|  |") {
				t.Errorf("a variable of %T has no doc", c)
			}
		}
	}
}
