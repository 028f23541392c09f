package activities

import (
	"errors"
	"regexp"
	"slices"
	"testing"
	"time"
)

// TestCatalogIntegrity proves the catalog is a consistent contract: unique,
// well-formed names; every compensation is a non-internal action; parameter
// definitions are sound; options are bounded and keep the final error types
// final.
func TestCatalogIntegrity(t *testing.T) {
	nameRE := regexp.MustCompile(`^[a-z]+\.[a-z_]+$`)
	seen := map[string]bool{}
	for _, a := range Catalog() {
		t.Run(a.Name, func(t *testing.T) {
			if !nameRE.MatchString(a.Name) {
				t.Errorf("name %q is not <system>.<verb>", a.Name)
			}
			if seen[a.Name] {
				t.Fatalf("duplicate action %q", a.Name)
			}
			seen[a.Name] = true
			if a.Description == "" {
				t.Error("no description")
			}
			if a.Compensation != "" {
				c, err := Lookup(a.Compensation)
				if err != nil {
					t.Fatalf("compensation: %v", err)
				}
				if c.Internal {
					t.Errorf("compensation %s is internal", c.Name)
				}
				if c.Compensation == a.Name {
					t.Errorf("compensation %s compensates back to %s (cycle)", c.Name, a.Name)
				}
				// A default compensation gets the forward step's parameters
				// of the same name, so it must not need any other.
				for _, p := range c.Params {
					if _, ok := a.Param(p.Name); p.Required && !ok {
						t.Errorf("compensation %s requires %q, which %s does not have", c.Name, p.Name, a.Name)
					}
				}
			}
			params := map[string]bool{}
			for _, p := range a.Params {
				if params[p.Name] {
					t.Errorf("parameter %q declared twice", p.Name)
				}
				params[p.Name] = true
				if p.Kind == KindEnum && len(p.Allowed) == 0 {
					t.Errorf("enum parameter %q has no allowed values", p.Name)
				}
				if p.Kind != KindEnum && len(p.Allowed) > 0 {
					t.Errorf("non-enum parameter %q has allowed values", p.Name)
				}
				if p.Required && p.Default != "" {
					t.Errorf("parameter %q is required and has a default", p.Name)
				}
				if p.Default != "" {
					if err := p.Validate(p.Default); err != nil {
						t.Errorf("default of %q: %v", p.Name, err)
					}
				}
				if p.Doc == "" {
					t.Errorf("parameter %q has no doc", p.Name)
				}
			}
			o := a.Options()
			if o.StartToCloseTimeout <= 0 || o.StartToCloseTimeout > time.Hour {
				t.Errorf("StartToCloseTimeout = %v, want (0, 1h]", o.StartToCloseTimeout)
			}
			if a.Long && (o.HeartbeatTimeout <= 0 || o.HeartbeatTimeout >= o.StartToCloseTimeout) {
				t.Errorf("long action: HeartbeatTimeout = %v with StartToClose %v", o.HeartbeatTimeout, o.StartToCloseTimeout)
			}
			rp := o.RetryPolicy
			if rp == nil {
				t.Fatal("no retry policy")
			}
			if !a.Internal && (rp.MaximumAttempts <= 0 || rp.MaximumAttempts > 10) {
				t.Errorf("MaximumAttempts = %d, want bounded 1..10", rp.MaximumAttempts)
			}
			if rp.InitialInterval <= 0 || rp.MaximumInterval < rp.InitialInterval || rp.BackoffCoefficient < 1 {
				t.Errorf("retry intervals not sane: %+v", rp)
			}
			want := FinalErrorTypes()
			if a.Internal {
				want = []string{ErrTypeBadParams, ErrTypeConflict, ErrTypeLedgerGap}
			}
			for _, et := range want {
				if !slices.Contains(rp.NonRetryableErrorTypes, et) {
					t.Errorf("error type %s is retryable", et)
				}
			}
		})
	}
}

// TestCatalogContract pins the names the brief fixes, so a rename breaks here
// and not in an implementation.
func TestCatalogContract(t *testing.T) {
	want := []string{
		"pve.resolve_asset", "pve.isolate", "pve.unisolate", "pve.snapshot", "pve.collect_evidence", "pve.stop",
		"pve.shutdown", "pve.start", "pve.backup", "pve.restore", "pve.rotate_token", "net.health_probe",
		"kc.resolve_user", "kc.list_sessions", "kc.disable_user", "kc.enable_user", "kc.logout_user",
		"kc.delete_session", "kc.revoke_realm", "kc.rotate_client_secret", "kc.collect_events",
		"keys.rotate_kek", "keys.rotate_intake_keys", "ledger.append", "notify.send", "compliance.notify", "report.generate",
		"pve.firewall_enable", "pve.firewall_restore", "kc.disable_direct_grants", "controls.collect", "controls.recheck",
	}
	var got []string
	for _, a := range Catalog() {
		got = append(got, a.Name)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("catalog names:\n got %v\nwant %v", got, want)
	}
	comp := map[string]string{PVEIsolate: PVEUnisolate, KCDisableUser: KCEnableUser, PVEStop: PVEStart, PVEShutdown: PVEStart}
	for fwd, c := range comp {
		a, err := Lookup(fwd)
		if err != nil || a.Compensation != c {
			t.Errorf("%s compensation = %q (%v), want %s", fwd, a.Compensation, err, c)
		}
	}
	if _, err := Lookup("pve.nuke"); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("Lookup(unknown) = %v, want ErrUnknownAction", err)
	}
}

func TestParamValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Param
		v    string
		ok   bool
	}{
		{"int ok", Param{Name: "n", Kind: KindInt}, "3", true},
		{"int bad", Param{Name: "n", Kind: KindInt}, "three", false},
		{"bool ok", Param{Name: "b", Kind: KindBool}, "true", true},
		{"bool bad", Param{Name: "b", Kind: KindBool}, "yes please", false},
		{"duration ok", Param{Name: "d", Kind: KindDuration}, "72h", true},
		{"duration negative", Param{Name: "d", Kind: KindDuration}, "-1s", false},
		{"duration bad", Param{Name: "d", Kind: KindDuration}, "3 days", false},
		{"cidr ok", Param{Name: "c", Kind: KindCIDRList}, "10.0.0.0/8, 192.168.1.5,fd00::/8", true},
		{"cidr empty", Param{Name: "c", Kind: KindCIDRList}, "", true},
		{"cidr bad", Param{Name: "c", Kind: KindCIDRList}, "10.0.0.0/33", false},
		{"enum ok", Param{Name: "e", Kind: KindEnum, Allowed: []string{"a", "b"}}, "b", true},
		{"enum bad", Param{Name: "e", Kind: KindEnum, Allowed: []string{"a", "b"}}, "c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate(tt.v)
			if (err == nil) != tt.ok {
				t.Errorf("Validate(%q) = %v, want ok=%v", tt.v, err, tt.ok)
			}
		})
	}
}

func TestParseCIDRList(t *testing.T) {
	got, err := ParseCIDRList("10.1.2.3/8, 192.168.1.5")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "192.168.1.5/32" {
		t.Errorf("ParseCIDRList = %v", got)
	}
}
