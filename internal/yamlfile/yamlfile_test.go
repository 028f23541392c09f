package yamlfile

import (
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestReader: each reading reports what is wrong with the file and line of
// the node, and keeps going, so that one pass finds every error.
func TestReader(t *testing.T) {
	const doc = `a: 1
a: 2
b: [x]
c: {k: v}
d: 90s
e: -1s
f: [1, 2]
zz: 3
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	r := &Reader{File: "t.yaml"}
	f := r.Fields(root.Content[0], "doc", "a", "b", "c", "d", "e", "f")
	if got := r.Str(f["a"], "a"); got != "1" {
		t.Errorf("a = %q, want the first value", got)
	}
	if got := r.Str(f["b"], "b"); got != "" {
		t.Errorf("a list read as a value: %q", got)
	}
	if got := r.List(f["c"], "c"); got != nil {
		t.Errorf("a mapping read as a list: %v", got)
	}
	if got := len(r.List(f["f"], "f")); got != 2 {
		t.Errorf("f has %d items, want 2", got)
	}
	if got := r.Duration(f["d"], "d", "60s"); got != 90*time.Second {
		t.Errorf("d = %s", got)
	}
	if got := r.Duration(f["e"], "e", "60s"); got != 0 {
		t.Errorf("a negative duration read as %s", got)
	}
	if got := r.Str(nil, "missing"); got != "" || r.List(nil, "missing") != nil || r.Duration(nil, "missing", "") != 0 {
		t.Error("a missing node is not empty")
	}
	r.Fields(f["c"], "c")
	want := []string{
		`t.yaml:2: doc: field "a" given twice`,
		`t.yaml:8: doc: unknown field "zz" (allowed: a, b, c, d, e, f)`,
		`t.yaml:3: b must be a single value`,
		`t.yaml:4: c must be a list`,
		`t.yaml:6: e: "-1s" is not a positive duration like 60s`,
		`t.yaml:4: c: unknown field "k" (this check takes no parameters)`,
	}
	if len(r.Errs) != len(want) {
		t.Fatalf("errors = %v, want %d", r.Errs, len(want))
	}
	for i, w := range want {
		if r.Errs[i].Error() != w {
			t.Errorf("error %d = %q, want %q", i, r.Errs[i], w)
		}
	}
}
