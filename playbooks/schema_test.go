package playbooks

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// updateGolden rewrites the generated files the tests compare against
// (playbook.schema.json, the README's diagrams) instead of failing.
var updateGolden = os.Getenv("IRU_UPDATE_GOLDEN") != ""

// TestSchemaCommitted: the committed playbook.schema.json is what Schema
// generates from the loader's keys and the params structs.
func TestSchemaCommitted(t *testing.T) {
	want, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if updateGolden {
		if err := os.WriteFile("playbook.schema.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("playbook.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("playbooks/playbook.schema.json is stale: regenerate it with IRU_UPDATE_GOLDEN=1 go test -run TestSchemaCommitted ./playbooks/")
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlDoc decodes YAML as an editor's schema validator sees it.
func yamlDoc(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestShippedPlaybooksMatchSchema: every shipped playbook is valid under the
// schema, so an editor shows no false alarm on them.
func TestShippedPlaybooksMatchSchema(t *testing.T) {
	s := compileSchema(t)
	files, err := fs.Glob(embedded, "*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no embedded playbooks: %v", err)
	}
	for _, f := range files {
		t.Run(path.Base(f), func(t *testing.T) {
			src, err := fs.ReadFile(embedded, f)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(yamlDoc(t, src)); err != nil {
				t.Errorf("%s does not match the schema: %v", f, err)
			}
		})
	}
}

// TestSchemaRejects: the mistakes an editor should flag as they are typed,
// each also rejected by the loader.
func TestSchemaRejects(t *testing.T) {
	s := compileSchema(t)
	step := func(y string) string {
		return validHead + "phases:\n  detection:\n" + y + "  containment: []\n  investigation: []\n  remediation: []\n  recovery: []\n  post_incident: []\n"
	}
	tests := []struct{ name, src, want string }{
		{"unknown parameter", step("    - id: a\n      action: pve.start\n      params: {asset: x, colour: red}\n"), "colour"},
		{"missing parameter", step("    - id: a\n      action: pve.restore\n      params: {asset: x}\n      approval: {roles: [ir-lead]}\n"), "from"},
		{"bad enum", step("    - id: a\n      action: pve.isolate\n      params: {asset: x, method: unplug}\n"), "method"},
		{"bad duration", step("    - id: a\n      action: pve.collect_evidence\n      params: {asset: x, window: forever}\n"), "window"},
		{"bad integer", step("    - id: a\n      action: net.health_probe\n      params: {retries: many}\n"), "retries"},
		{"unknown compensation parameter", step("    - id: a\n      action: pve.isolate\n      params: {asset: x}\n      compensation: {action: pve.unisolate, params: {allow: 10.0.0.0/8}}\n"), "allow"},
		{"unknown action", step("    - id: a\n      action: pve.nuke\n"), "action"},
		{"unknown step field", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      colour: red\n"), "colour"},
		{"missing phase", validHead + "phases:\n  detection: []\n", "investigation"},
		{"bad on_failure", step("    - id: a\n      action: pve.start\n      params: {asset: x}\n      on_failure: retry\n"), "on_failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, errs := Parse("bad.yaml", []byte(tt.src)); len(errs) == 0 {
				t.Fatal("the loader accepts it; the case is wrong")
			}
			err := s.Validate(yamlDoc(t, []byte(tt.src)))
			if err == nil {
				t.Fatal("the schema accepts it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("schema error does not mention %q: %v", tt.want, err)
			}
		})
	}
}
