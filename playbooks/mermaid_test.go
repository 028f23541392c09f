package playbooks

import (
	"strings"
	"testing"
)

// TestMermaid: phases are subgraphs chained in order (an empty phase
// included), a parallel group is its own subgraph entered and left by all
// its steps, an approval gate is a hexagon, and a compensation is a dashed
// edge to the action that undoes the step.
func TestMermaid(t *testing.T) {
	src := validHead + `phases:
  detection:
    - id: resolve
      action: pve.resolve_asset
      params: {asset: x}
  containment:
    - parallel:
        - id: isolate
          action: pve.isolate
          params: {asset: x}
        - id: snap
          action: pve.snapshot
          params: {asset: x}
  investigation: []
  remediation:
    - id: stop
      action: pve.stop
      params: {asset: x}
      approval: {roles: [ir-lead, ciso], quorum: 2}
      compensation: none
  recovery:
    - id: lift
      action: pve.unisolate
      params: {asset: x}
      compensates: isolate
      on_failure: continue
  post_incident:
    - id: report
      action: report.generate
`
	pb, errs := Parse("m.yaml", []byte(src))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := pb.Mermaid()
	for _, want := range []string{
		"flowchart TD\n  subgraph p_detection [detection]\n    s_resolve[\"<b>resolve</b><br/>pve.resolve_asset\"]\n  end\n",
		"    subgraph p_containment_1 [parallel]\n      s_isolate[",
		"  s_resolve --> s_isolate & s_snap\n",
		"  s_isolate & s_snap --> p_investigation_empty\n",
		"  p_investigation_empty --> s_stop\n",
		`s_stop{{"<b>stop</b><br/>pve.stop<br/>approval: ir-lead or ciso ×2"}}`,
		`s_lift["<b>lift</b><br/>pve.unisolate<br/>on failure: continue<br/>lifts isolate"]`,
		"  s_lift --> s_report\n",
		"  s_isolate -.->|undo| c_isolate([\"pve.unisolate\"])\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("chart lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "c_stop") {
		t.Errorf("a step with compensation: none has an undo edge:\n%s", got)
	}
}
