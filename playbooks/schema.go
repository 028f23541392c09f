package playbooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/iru-responder/responder/activities"
)

//go:generate go run ../starter playbook schema -o playbook.schema.json

// SchemaID is the $id of the playbook JSON Schema (the file committed next
// to the playbooks, playbook.schema.json).
const SchemaID = "https://github.com/iru-responder/responder/playbooks/playbook.schema.json"

// field is one key of a playbook mapping: its name and JSON Schema. The
// parser accepts exactly these keys, so the schema and the loader agree.
type field struct {
	name   string
	schema map[string]any
}

func names(fs []field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

func object(fs []field, required ...string) map[string]any {
	props := map[string]any{}
	for _, f := range fs {
		props[f.name] = f.schema
	}
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func str(doc string) map[string]any { return map[string]any{"type": "string", "description": doc} }

func enum(doc string, values ...string) map[string]any {
	return map[string]any{"enum": values, "description": doc}
}

// durationPattern is time.ParseDuration's syntax (positive values).
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

func duration(doc string) map[string]any {
	return map[string]any{"type": "string", "pattern": durationPattern, "description": doc}
}

func integer(doc string, lo, hi int) map[string]any {
	return map[string]any{"type": "integer", "minimum": lo, "maximum": hi, "description": doc}
}

func boolean(doc string) map[string]any { return map[string]any{"type": "boolean", "description": doc} }

func list(doc string) map[string]any {
	return map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": doc}
}

var playbookFields = []field{
	{"name", map[string]any{"type": "string", "pattern": nameRE.String(), "description": "playbook name: lowercase letters, digits and dashes"}},
	{"version", map[string]any{"type": []string{"string", "number"}, "description": "version, compared numerically part by part (1.10.0 > 1.9.0)"}},
	{"description", str("what the playbook is for")},
	{"severity_default", enum("severity of an incident whose alert gives none", "critical", "high", "medium", "low", "info")},
	{"drill", boolean("a drill playbook: destructive steps need no approval, approvals may auto-approve")},
	{"escalation", list("notification tiers, lowest first (default: security-team, ir-lead, ciso)")},
	{"phases", map[string]any{"$ref": "#/$defs/phases"}},
}

var stepFields = []field{
	{"id", map[string]any{"type": "string", "pattern": idRE.String(), "description": "step id, unique in the playbook"}},
	{"action", map[string]any{"$ref": "#/$defs/action"}},
	{"params", map[string]any{"type": "object", "description": "the action's parameters (see activities/params.go); values may be templates"}},
	{"when", str("template rendering to true or false; the step is skipped when false")},
	{"approval", map[string]any{"$ref": "#/$defs/approval"}},
	{"approval_waived", str("why a destructive step runs without approval")},
	{"timeout", duration("overrides the action's start-to-close timeout")},
	{"retry", object(retryFields)},
	{"on_failure", enum("what a failure does (default abort)", OnFailureAbort, OnFailureContinue, OnFailureEscalate)},
	{"compensation", map[string]any{"$ref": "#/$defs/compensation"}},
	{"compensates", str("an earlier step whose compensation this step performs")},
	{"risk", enum("high: approving needs a second factor", RiskNormal, RiskHigh)},
}

var retryFields = []field{
	{"max_attempts", integer("attempts, the first included", 1, 20)},
	{"initial_interval", duration("first backoff")},
	{"maximum_interval", duration("largest backoff")},
}

var approvalFields = []field{
	{"roles", list("roles that may approve (any one of them)")},
	{"quorum", integer("distinct approvers needed (default 1)", 1, 10)},
	{"timeout", duration("bound of each wait (default 1h)")},
	{"on_timeout", enum("what a timeout does (default escalate)", TimeoutEscalate, TimeoutDeny, TimeoutAutoApprove)},
	{"drill_only", boolean("auto_approve only in drills")},
	{"max_escalations", integer("escalations before the incident ends escalated-failed (default 3)", 0, 10)},
}

var compensationFields = []field{
	{"action", map[string]any{"$ref": "#/$defs/action"}},
	{"params", map[string]any{"type": "object", "description": "parameters; those not given are taken from the forward step by name"}},
}

// templateSchema matches a value the workflow renders before the action runs.
var templateSchema = map[string]any{"type": "string", "pattern": `\{\{`}

// kindDefs are the schemas of parameter kinds ($defs/kind.KIND): a literal
// of the kind or a template.
func kindDefs() map[string]any {
	lit := map[activities.ParamKind]map[string]any{
		activities.KindInt:      {"anyOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "string", "pattern": `^[+-]?[0-9]+$`}}},
		activities.KindBool:     {"anyOf": []any{map[string]any{"type": "boolean"}, map[string]any{"enum": []string{"true", "false", "1", "0", "t", "f", "TRUE", "FALSE", "True", "False", "T", "F"}}}},
		activities.KindDuration: {"type": "string", "pattern": durationPattern},
		activities.KindTime:     {"type": "string", "format": "date-time"},
	}
	out := map[string]any{}
	for k, l := range lit {
		out["kind."+string(k)] = map[string]any{"anyOf": []any{l, map[string]any{"$ref": "#/$defs/template"}}}
	}
	return out
}

// paramSchema is the schema of one parameter value.
func paramSchema(p activities.Param) map[string]any {
	s := map[string]any{"description": p.Doc}
	switch p.Kind {
	case activities.KindString, activities.KindCIDRList:
		s["type"] = "string"
	case activities.KindEnum:
		s["anyOf"] = []any{map[string]any{"enum": p.Allowed}, map[string]any{"$ref": "#/$defs/template"}}
	default:
		s["$ref"] = "#/$defs/kind." + string(p.Kind)
	}
	if p.Default != "" {
		s["default"] = p.Default
	}
	return s
}

// paramsDef is the schema of an action's params mapping ($defs/params.NAME).
func paramsDef(a activities.Action) map[string]any {
	props := map[string]any{}
	for _, p := range a.Params {
		props[p.Name] = paramSchema(p)
	}
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false, "description": a.Description}
}

// actionParams is the `if action is a then params are a's` rule of a step,
// or of a compensation, whose parameters are never required (the forward
// step's fill in).
func actionParams(a activities.Action, step bool) map[string]any {
	params := map[string]any{"$ref": "#/$defs/params." + a.Name}
	then := map[string]any{"properties": map[string]any{"params": params}}
	var required []string
	for _, p := range a.Params {
		if p.Required {
			required = append(required, p.Name)
		}
	}
	if step && len(required) > 0 {
		params["required"] = required
		then["required"] = []string{"params"}
	}
	return map[string]any{
		"if":   map[string]any{"properties": map[string]any{"action": map[string]any{"const": a.Name}}, "required": []string{"action"}},
		"then": then,
	}
}

// Schema returns the JSON Schema of playbook files (draft 2020-12), derived
// from the loader's keys and the actions' params structs. Editors use it to
// check a playbook as it is typed; [Parse] remains the authority (it also
// checks step references, templates and approvals).
func Schema() ([]byte, error) {
	var actions []string
	var stepRules, compRules []any
	defs := kindDefs()
	for _, a := range activities.Catalog() {
		if a.Internal {
			continue
		}
		actions = append(actions, a.Name)
		defs["params."+a.Name] = paramsDef(a)
		stepRules = append(stepRules, actionParams(a, true))
		compRules = append(compRules, actionParams(a, false))
	}
	step := object(stepFields, "id", "action")
	step["allOf"] = stepRules
	comp := object(compensationFields, "action")
	comp["allOf"] = compRules
	phases := map[string]any{}
	for _, ph := range Phases {
		phases[ph] = map[string]any{"type": []string{"array", "null"}, "items": map[string]any{"$ref": "#/$defs/entry"}}
	}
	parallel := object([]field{{"parallel", map[string]any{"type": "array", "minItems": 2, "items": map[string]any{"$ref": "#/$defs/step"}}}}, "parallel")
	root := object(playbookFields, "name", "version", "description", "severity_default", "phases")
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "IRU Responder playbook"
	maps.Copy(defs, map[string]any{
		"phases":       map[string]any{"type": "object", "properties": phases, "required": slices.Clone(Phases), "additionalProperties": false, "description": "the six phases, in order"},
		"entry":        map[string]any{"oneOf": []any{map[string]any{"$ref": "#/$defs/parallel"}, map[string]any{"$ref": "#/$defs/step"}}},
		"parallel":     parallel,
		"step":         step,
		"approval":     object(approvalFields, "roles"),
		"compensation": map[string]any{"oneOf": []any{map[string]any{"const": "none", "description": "the step is not undone"}, comp}},
		"action":       enum("a catalog action (activities/catalog.go)", actions...),
		"template":     templateSchema,
	})
	root["$defs"] = defs
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode playbook schema: %w", err)
	}
	return b.Bytes(), nil
}
