package playbooks

import (
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// FuzzParse feeds the playbook loader arbitrary files, seeded with the
// shipped playbooks: it never panics, every error names the file, and a
// playbook it accepts has the six phases and stays within its byte budget.
func FuzzParse(f *testing.F) {
	names, err := fs.Glob(embedded, "*.yaml")
	if err != nil || len(names) == 0 {
		f.Fatalf("seed playbooks: %v", err)
	}
	for _, n := range names {
		b, err := fs.ReadFile(embedded, n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("name: x\nphases: {}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		pb, errs := Parse("fuzz.yaml", src)
		if len(errs) > 0 {
			if pb != nil {
				t.Fatal("a playbook returned with errors")
			}
			for _, err := range errs {
				var pe *Error
				if !errors.As(err, &pe) || pe.File != "fuzz.yaml" {
					t.Fatalf("error %T %v does not name the file", err, err)
				}
			}
			return
		}
		if pb == nil || len(pb.Phases) != len(Phases) || strings.TrimSpace(pb.Name) == "" {
			t.Fatalf("accepted an incomplete playbook: %+v", pb)
		}
		if len(src) > MaxPlaybookBytes {
			t.Fatalf("accepted a %d-byte file", len(src))
		}
		if b, err := json.Marshal(pb); err != nil || len(b) > MaxPlaybookEncodedBytes {
			t.Fatalf("accepted a playbook of %d encoded bytes (%v)", len(b), err)
		}
	})
}

// TestPlaybookBudget: a playbook file over its byte budget is refused
// with an error naming the file and the budget.
func TestPlaybookBudget(t *testing.T) {
	src, err := fs.ReadFile(embedded, "container-compromise.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := Parse("ok.yaml", src); len(errs) > 0 {
		t.Fatalf("shipped playbook refused: %v", errs)
	}
	big := append(append([]byte{}, src...), []byte("\n# "+strings.Repeat("x", MaxPlaybookBytes))...)
	_, errs := Parse("big.yaml", big)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "big.yaml") || !strings.Contains(errs[0].Error(), "budget") {
		t.Fatalf("errors %v, want the byte budget", errs)
	}
}
