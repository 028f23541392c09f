package activities

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
)

// TestDecodeParams decodes rendered parameters into typed structs: values
// of every kind, defaults for missing or empty values, and each kind of
// rejection as a final BadParams error naming the action and parameter.
func TestDecodeParams(t *testing.T) {
	in := func(action string, p map[string]string) ActionInput { return ActionInput{Action: action, Params: p} }
	t.Run("isolate", func(t *testing.T) {
		got, err := DecodeParams[PVEIsolateParams](in(PVEIsolate, map[string]string{"asset": "db", "allow": "10.0.0.0/24, 192.0.2.7", "reason": " r "}))
		if err != nil {
			t.Fatal(err)
		}
		want := PVEIsolateParams{AssetParams: AssetParams{Asset: "db"}, Method: "firewall",
			Allow:        CIDRList{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("192.0.2.7/32")},
			ReasonParams: ReasonParams{Reason: "r"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		got, err := DecodeParams[PVEShutdownParams](in(PVEShutdown, map[string]string{"asset": "db", "force": "true", "timeout": ""}))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Force || got.Timeout != 2*time.Minute {
			t.Errorf("got %+v, want force and the 2m default", got)
		}
	})
	t.Run("compliance", func(t *testing.T) {
		got, err := DecodeParams[ComplianceNotifyParams](in(ComplianceNotify, map[string]string{"regime": "gdpr", "aware_since": "2026-12-05T10:00:00Z"}))
		if err != nil {
			t.Fatal(err)
		}
		if got.Deadline != 72*time.Hour || !got.AwareSince.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("probe", func(t *testing.T) {
		got, err := DecodeParams[NetHealthProbeParams](in(NetHealthProbe, map[string]string{"retries": "7", "expect_status": "204"}))
		if err != nil {
			t.Fatal(err)
		}
		if got.Retries != 7 || got.Timeout != 5*time.Second || got.ExpectStatus != 204 {
			t.Errorf("got %+v", got)
		}
	})
	bad := []struct {
		name   string
		decode func() error
		want   string
	}{
		{"unknown", func() error {
			_, err := DecodeParams[PVEStartParams](in(PVEStart, map[string]string{"asset": "db", "colour": "red"}))
			return err
		}, `pve.start: no parameter "colour"`},
		{"missing", func() error {
			_, err := DecodeParams[KCLogoutUserParams](in(KCLogoutUser, map[string]string{"realm": "iru"}))
			return err
		}, "kc.logout_user: parameter user_id is required"},
		{"enum", func() error {
			_, err := DecodeParams[PVEBackupParams](in(PVEBackup, map[string]string{"asset": "db", "mode": "fast"}))
			return err
		}, `parameter mode: "fast" is not one of snapshot, suspend, stop`},
		{"cidr", func() error {
			_, err := DecodeParams[PVEIsolateParams](in(PVEIsolate, map[string]string{"asset": "db", "allow": "10.0.0.300/8"}))
			return err
		}, "parameter allow"},
		{"duration", func() error {
			_, err := DecodeParams[KCCollectEventsParams](in(KCCollectEvents, map[string]string{"realm": "iru", "window": "-1h"}))
			return err
		}, "negative"},
		{"bool", func() error {
			_, err := DecodeParams[KCRevokeRealmParams](in(KCRevokeRealm, map[string]string{"realm": "iru", "push": "yes please"}))
			return err
		}, "parameter push"},
		{"time", func() error {
			_, err := DecodeParams[ComplianceNotifyParams](in(ComplianceNotify, map[string]string{"regime": "gdpr", "aware_since": "monday"}))
			return err
		}, "not an RFC 3339 time"},
		{"validate", func() error {
			_, err := DecodeParams[NetHealthProbeParams](in(NetHealthProbe, map[string]string{"expect_status": "42"}))
			return err
		}, "parameter expect_status: 42 is not an HTTP status"},
		{"another action's struct", func() error {
			_, err := DecodeParams[PVEStopParams](in(PVEStart, map[string]string{"asset": "db"}))
			return err
		}, "pve.start: parameters decoded as activities.PVEStopParams, the catalog declares activities.PVEStartParams"},
		{"template left unrendered", func() error {
			_, err := DecodeParams[NetHealthProbeParams](in(NetHealthProbe, map[string]string{"retries": "{{ .Steps.x.n }}"}))
			return err
		}, "not an integer"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode()
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != ErrTypeBadParams || !ae.NonRetryable() || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want a final %s containing %q", err, ErrTypeBadParams, tt.want)
			}
		})
	}
}

// TestCheckParamsLocatesProblems: the loader's view of the same decoding,
// which names the parameter of each problem and skips templates.
func TestCheckParamsLocatesProblems(t *testing.T) {
	a, err := Lookup(PVEIsolate)
	if err != nil {
		t.Fatal(err)
	}
	errs := a.CheckParams(map[string]string{"method": "unplug", "colour": "red", "allow": "{{ .Labels.allow }}"})
	type got struct {
		name             string
		unknown, missing bool
	}
	var gots []got
	for _, e := range errs {
		gots = append(gots, got{e.Name, e.Unknown, e.Missing})
	}
	want := []got{{"colour", true, false}, {"asset", false, true}, {"method", false, false}}
	if !reflect.DeepEqual(gots, want) {
		t.Errorf("CheckParams = %+v, want %+v", gots, want)
	}
}

// TestEveryActionHasParamsStruct: every playbook action declares its
// parameters by a struct, and each declared default decodes.
func TestEveryActionHasParamsStruct(t *testing.T) {
	for _, a := range Catalog() {
		if a.Internal {
			continue
		}
		if a.ParamsType() == nil || a.ParamsType().Kind() != reflect.Struct {
			t.Errorf("%s: no params struct", a.Name)
			continue
		}
		given := map[string]string{}
		for _, p := range a.Params {
			if p.Required {
				switch p.Kind {
				case KindTime:
					given[p.Name] = "2026-01-01T00:00:00Z"
				case KindEnum:
					given[p.Name] = p.Allowed[0]
				default:
					given[p.Name] = "x"
				}
			}
		}
		if errs := a.CheckParams(given); len(errs) > 0 {
			t.Errorf("%s: defaults and required values do not decode: %v", a.Name, errs)
		}
	}
}
