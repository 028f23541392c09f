package severity

import (
	"slices"
	"testing"
)

func TestRank(t *testing.T) {
	tests := []struct {
		in    string
		rank  int
		valid bool
	}{
		{Critical, 4, true},
		{High, 3, true},
		{Medium, 2, true},
		{Low, 1, true},
		{Info, 0, true},
		{"", -1, false},
		{"CRITICAL", -1, false},
		{"warning", -1, false},
	}
	for _, tt := range tests {
		if got := Rank(tt.in); got != tt.rank {
			t.Errorf("Rank(%q) = %d, want %d", tt.in, got, tt.rank)
		}
		if got := Valid(tt.in); got != tt.valid {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.valid)
		}
	}
}

func TestAll(t *testing.T) {
	want := []string{Critical, High, Medium, Low, Info}
	if got := All(); !slices.Equal(got, want) {
		t.Fatalf("All() = %v, want %v", got, want)
	}
	All()[0] = "changed"
	if All()[0] != Critical {
		t.Fatal("All returns the package's own slice")
	}
}
