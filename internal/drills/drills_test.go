package drills

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iru-responder/responder/playbooks"
	"github.com/iru-responder/responder/workflows"
)

func embeddedPlaybooks(t *testing.T) *playbooks.Set {
	t.Helper()
	set, err := playbooks.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestEmbeddedFile(t *testing.T) {
	f, err := Embedded(embeddedPlaybooks(t))
	if err != nil {
		t.Fatalf("embedded drills file: %v", err)
	}
	d, ok := f.Get("container-compromise-canary")
	if !ok {
		t.Fatalf("embedded drills %v lack container-compromise-canary", f.Names())
	}
	if d.Playbook != "container-compromise" || d.Target != "drill-canary" || d.Mode != workflows.DrillModeLive {
		t.Errorf("drill = %+v", d)
	}
	if len(d.Schedule.Cron) != 1 || d.Schedule.Cron[0] != "0 3 * * MON" {
		t.Errorf("schedule = %+v, want weekly cron", d.Schedule)
	}
	var contain time.Duration
	for _, o := range d.Objectives {
		if o.Name == workflows.ObjectiveContain {
			contain = o.Within
		}
	}
	if contain != 60*time.Second {
		t.Errorf("contain_within = %s, want 60s", contain)
	}
	in := d.Input("schedule")
	if err := in.Validate(); err != nil {
		t.Errorf("workflow input of the embedded drill: %v", err)
	}
	if in.TriggeredBy != "schedule" || len(in.AutoApprove) != 2 {
		t.Errorf("input = %+v", in)
	}
}

const valid = `drills:
  - name: canary
    playbook: container-compromise
    target: drill-canary
    schedule: {cron: ["0 3 * * MON"], interval: 24h, timezone: Europe/Berlin}
    mode: live
    objectives: {contain_within: 60s, recover_within: 10m, investigation_within: 5m}
    auto_approve: [shutdown]
`

func TestParse(t *testing.T) {
	set := embeddedPlaybooks(t)
	for _, tc := range []struct {
		name string
		src  string
		// want are "line: fragment" pairs every one of which must appear.
		want []string
	}{
		{"valid", valid, nil},
		{"dry run with defaults", `drills:
  - name: dry
    playbook: credential-compromise
    target: drill-user
    schedule: {interval: 1h}
    mode: dry-run
    objectives: {report_within: 30m}
`, nil},
		{"not yaml", "drills: [\n", []string{":1: parse yaml"}},
		{"no list", "drills: {}\n", []string{":1: drills must be a list"}},
		{"unknown top field", "drill: []\n", []string{`:1: the file: unknown field "drill"`, ":1: no drills list"}},
		{"unknown drill field", strings.Replace(valid, "    mode: live\n", "    mode: live\n    colour: red\n", 1),
			[]string{`:7: drill "canary": unknown field "colour"`}},
		{"bad name", strings.Replace(valid, "name: canary", "name: Canary_1", 1), []string{`:2: drill name "Canary_1"`}},
		{"duplicate name", valid + strings.TrimPrefix(valid, "drills:\n"), []string{`:9: drill "canary": the name is already used on line 2`}},
		{"bad mode", strings.Replace(valid, "mode: live", "mode: chaos", 1), []string{`:6: drill "canary": mode "chaos"`}},
		{"missing fields", "drills:\n  - name: x\n", []string{":2: drill \"x\": no playbook", ":2: drill \"x\": no target", ":2: drill \"x\": mode \"\"",
			":2: drill \"x\": no schedule", ":2: drill \"x\": no objectives"}},
		{"bad cron", strings.Replace(valid, "0 3 * * MON", "0 25 * * MON", 1), []string{`:5: drill "canary": schedule: cron "0 25 * * MON": hour field "25"`}},
		{"short interval", strings.Replace(valid, "interval: 24h", "interval: 30s", 1), []string{":5: ", "interval 30s is under 1m0s"}},
		{"bad timezone", strings.Replace(valid, "Europe/Berlin", "Mars/Olympus", 1), []string{`:5: `, `timezone "Mars/Olympus"`}},
		{"empty schedule", strings.Replace(valid, `{cron: ["0 3 * * MON"], interval: 24h, timezone: Europe/Berlin}`, "{timezone: UTC}", 1),
			[]string{":5: ", "want cron expressions and/or an interval"}},
		{"unknown objective", strings.Replace(valid, "investigation_within", "be_quick", 1), []string{`:7: drill "canary": unknown objective "be_quick"`}},
		{"bad duration", strings.Replace(valid, "contain_within: 60s", "contain_within: a minute", 1), []string{`:7: drill "canary": contain_within: "a minute" is not a positive duration`}},
		{"unknown playbook", strings.Replace(valid, "playbook: container-compromise", "playbook: alien-invasion", 1), []string{`:3: drill "canary": playbook "alien-invasion"`}},
		{"unknown step", strings.Replace(valid, "[shutdown]", "[shutdown, reboot]", 1), []string{`:8: drill "canary": auto_approve: playbook container-compromise has no step "reboot"`}},
		{"step without approval", strings.Replace(valid, "[shutdown]", "[isolate]", 1), []string{`:8: `, `step "isolate" of playbook container-compromise needs no approval`}},
		{"quorum two", strings.Replace(strings.Replace(valid, "container-compromise", "key-compromise", 1), "[shutdown]", "[rotate_kek]", 1),
			[]string{`:8: `, "needs a quorum of 2"}},
		{"twice", strings.Replace(valid, "[shutdown]", "[shutdown, shutdown]", 1), []string{`:8: drill "canary": auto_approve lists "shutdown" twice`}},
		{"poll_interval is no field", strings.Replace(valid, "    mode: live\n", "    mode: live\n    poll_interval: 100ms\n", 1), []string{`:7: `, `unknown field "poll_interval"`}},
		{"long timeout", strings.Replace(valid, "    mode: live\n", "    mode: live\n    timeout: 48h\n", 1), []string{`:7: `, "timeout 48h0m0s is over 24h0m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("drills.yaml", []byte(tc.src), set)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(f.Drills) == 0 {
					t.Fatal("no drills")
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", f)
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.File != "drills.yaml" || fe.Line < 1 {
				t.Errorf("error %v: want *Error with file and line", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), "drills.yaml"+w) && !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
				if strings.HasPrefix(w, ":") && !strings.Contains(err.Error(), "drills.yaml"+w) {
					t.Errorf("error\n%v\nlacks the located %q", err, "drills.yaml"+w)
				}
			}
		})
	}
}

func TestParseWithoutPlaybooks(t *testing.T) {
	// Without a playbook set, references are not checked.
	f, err := Parse("d.yaml", []byte(strings.Replace(valid, "[shutdown]", "[anything]", 1)), nil)
	if err != nil || f.Drills[0].AutoApprove[0] != "anything" {
		t.Fatalf("Parse = %+v, %v", f, err)
	}
	d := f.Drills[0]
	if d.Schedule.Interval != 24*time.Hour || d.Schedule.Timezone != "Europe/Berlin" || len(d.Objectives) != 3 || d.Objectives[2].Name != "investigation_within" {
		t.Errorf("drill = %+v", d)
	}
}

func TestCheckCron(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string // "" = valid
	}{
		{"0 3 * * MON", ""},
		{"*/15 * * * *", ""},
		{"0 9-17/2 1,15 JAN-MAR mon-fri", ""},
		{"0 0 ? * 7", ""},
		{"@weekly", ""},
		{"@Daily", ""},
		{"@fortnightly", "unknown descriptor"},
		{"0 3 * *", "4 fields"},
		{"60 * * * *", `minute field "60"`},
		{"0 0 0 * *", `day of month field "0"`},
		{"0 0 * 13 *", `month field "13"`},
		{"0 0 * * 8", `day of week field "8"`},
		{"0 0 * * FUN", `day of week field "FUN"`},
		{"5-1 * * * *", "backwards"},
		{"*/0 * * * *", "step"},
		{"1,,2 * * * *", "empty list item"},
		{"? * * * *", `minute field "?"`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			err := CheckCron(tc.expr)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckCron(%q) = %v, want %q", tc.expr, err, tc.want)
			}
		})
	}
}
