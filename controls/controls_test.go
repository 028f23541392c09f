package controls

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestEmbedded checks the shipped file loads and covers the guide's checks.
func TestEmbedded(t *testing.T) {
	f, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range f.Controls {
		seen[c.Check] = true
		if c.Playbook != DefaultPlaybook {
			t.Errorf("control %s: playbook %q, want the default %q", c.ID, c.Playbook, DefaultPlaybook)
		}
		if len(c.Frameworks) == 0 {
			t.Errorf("control %s cites no framework clause", c.ID)
		}
	}
	for _, k := range Kinds() {
		if !seen[k] {
			t.Errorf("check kind %s is used by no control of the embedded file", k)
		}
	}
	ing, ok := f.Get("net-ingress-ports")
	if !ok || len(ing.Params.Ports) != 3 || ing.Params.Ports[0] != 443 || ing.Params.Ports[1] != 8545 || ing.Params.Ports[2] != 5000 {
		t.Errorf("net-ingress-ports: %+v, want the guide's ports 443, 8545, 5000", ing.Params.Ports)
	}
	if tl, _ := f.Get("idm-token-lifespan"); tl.Params.MaxLifespan != 5*time.Minute {
		t.Errorf("idm-token-lifespan max %s, want 5m", tl.Params.MaxLifespan)
	}
	if len(f.Digest) != 64 {
		t.Errorf("digest %q", f.Digest)
	}
}

const head = "frameworks:\n  \"SOC2 CC6.6\": outside threats\ncontrols:\n"

// TestParseErrors checks each problem is reported at its line with its cause.
func TestParseErrors(t *testing.T) {
	ok := "  - id: a\n    section: s\n    title: t\n    check: kc.brute_force\n    severity: high\n"
	for _, tc := range []struct {
		name, src string
		want      []string // "line: substring"
	}{
		{"valid", head + ok, nil},
		{"unknown kind", head + "  - id: a\n    section: s\n    title: t\n    check: pve.telepathy\n    severity: high\n",
			[]string{`7: control "a": unknown check kind "pve.telepathy"`}},
		{"duplicate id", head + ok + ok, []string{`9: control "a": the id is already used on line 4`}},
		{"bad severity", head + "  - id: a\n    section: s\n    title: t\n    check: kc.brute_force\n    severity: urgent\n",
			[]string{`8: control "a": severity "urgent": want one of`}},
		{"no severity", head + "  - id: a\n    section: s\n    title: t\n    check: kc.brute_force\n",
			[]string{`4: control "a": severity "": want one of`}},
		{"empty playbook", head + ok + "    playbook: \"\"\n", []string{`9: control "a": playbook "": want a playbook name`}},
		{"bad id", head + "  - id: A_b\n    section: s\n    title: t\n    check: kc.brute_force\n    severity: high\n",
			[]string{`4: control id "A_b"`}},
		{"no section no title", head + "  - id: a\n    check: kc.brute_force\n    severity: high\n",
			[]string{`4: control "a": no section`, `4: control "a": no title`}},
		{"unknown field", head + ok + "    owner: bob\n", []string{`9: control: unknown field "owner"`}},
		{"param of another kind", head + ok + "    params: {ports: [22]}\n", []string{`9: control "a": params of kc.brute_force: unknown field "ports" (this check takes no parameters)`}},
		{"missing required param", head + "  - id: a\n    section: s\n    title: t\n    check: pve.ingress\n    severity: high\n",
			[]string{`4: control "a": check pve.ingress needs params.ports`}},
		{"bad port", head + "  - id: a\n    section: s\n    title: t\n    check: pve.ingress\n    severity: high\n    params:\n      ports: [443, 70000]\n",
			[]string{`10: control "a": params.ports: "70000" is not a port`}},
		{"bad cidr", head + "  - id: a\n    section: s\n    title: t\n    check: pve.ingress\n    severity: high\n    params:\n      ports: [443]\n      allowed_sources: [10.0.0.0/33]\n",
			[]string{`11: control "a": params.allowed_sources: "10.0.0.0/33" is not a CIDR`}},
		{"bad pair", head + "  - id: a\n    section: s\n    title: t\n    check: pve.lateral\n    severity: high\n    params:\n      allow_pairs:\n        - \"db to web\"\n",
			[]string{`11: control "a": params.allow_pairs: "db to web": want "SOURCE -> DEST:PORT"`}},
		{"self pair", head + "  - id: a\n    section: s\n    title: t\n    check: pve.lateral\n    severity: high\n    params:\n      allow_pairs: [\"db -> db:5432\"]\n",
			[]string{`10: control "a": params.allow_pairs: "db -> db:5432": a container to itself`}},
		{"bad duration", head + "  - id: a\n    section: s\n    title: t\n    check: kc.token_lifespan\n    severity: high\n    params: {max_lifespan: soon}\n",
			[]string{`9: control "a": params.max_lifespan: "soon" is not a positive duration`}},
		{"unknown key kind", head + "  - id: a\n    section: s\n    title: t\n    check: keys.age\n    severity: high\n    params: {max_age: 2160h, kinds: [ssh]}\n",
			[]string{`9: control "a": params.kinds: unknown key kind "ssh"`}},
		{"unknown clause", head + ok + "    frameworks: [\"PCI 1.2\"]\n", []string{`9: control "a": framework clause "PCI 1.2" is not in the file's frameworks table`}},
		{"empty targets", head + ok + "    targets: []\n", []string{`9: control "a": targets is empty`}},
		{"no controls", "frameworks: {}\ncontrols: []\n", []string{`2: controls: the list is empty`}},
		{"yaml syntax", head + "  - id: [\n", []string{`4: parse yaml`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("c.yaml", []byte(tc.src))
			if len(tc.want) == 0 {
				if err != nil || len(f.Controls) != 1 {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.src)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), "c.yaml:"+w) {
					t.Errorf("error %q\nwant it to contain %q", err, "c.yaml:"+w)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T is not a *controls.Error", err)
			}
		})
	}
}

// TestCheckPlaybooks checks a control naming a playbook that is not loaded is refused.
func TestCheckPlaybooks(t *testing.T) {
	f, err := Parse("c.yaml", []byte(head+"  - id: a\n    section: s\n    title: t\n    check: kc.brute_force\n    severity: high\n    playbook: nope\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckPlaybooks(names{"control-drift"}); err == nil || !strings.Contains(err.Error(), `c.yaml:4: control "a": playbook "nope" is not loaded`) {
		t.Errorf("CheckPlaybooks: %v", err)
	}
	if err := f.CheckPlaybooks(names{"nope"}); err != nil {
		t.Errorf("CheckPlaybooks: %v", err)
	}
}

type names []string

func (n names) Names() []string { return n }

// TestSelect checks selection by id keeps the order given and refuses unknown ids.
func TestSelect(t *testing.T) {
	f, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Select([]string{"idm-brute-force", "net-datacenter-firewall"})
	if err != nil || len(got) != 2 || got[0].ID != "idm-brute-force" {
		t.Fatalf("Select: %v %v", got, err)
	}
	if _, err := f.Select([]string{"nope"}); err == nil {
		t.Error("Select accepted an unknown id")
	}
}
