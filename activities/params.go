package activities

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file declares the parameters of every playbook action, one struct per
// action. A field is a parameter when it has a `param` tag:
//
//	param:"name[,required]"  the parameter's name in playbooks and on the wire
//	default:"value"          used when the playbook omits it (or it renders empty)
//	enum:"a,b"               the allowed values of a string parameter
//	doc:"text"               what it is for
//
// The field's Go type is the parameter's kind: string (or an enum), int,
// bool, [time.Duration], [time.Time] (RFC 3339) or [CIDRList]. A struct that
// also has a Validate method gets it called after decoding, for checks that
// span fields. The catalog ([Action.Params]) and the playbook JSON Schema are
// derived from these structs; the playbook loader decodes every step's
// literal parameters into them, and each activity decodes its
// [ActionInput.Params] with [DecodeParams].

// CIDRList is a [KindCIDRList] parameter: comma separated CIDRs or single
// addresses (as /32 or /128), see [ParseCIDRList].
type CIDRList []netip.Prefix

// AssetParams is the target of the Proxmox actions.
type AssetParams struct {
	Asset string `param:"asset,required" doc:"canonical asset (container) name"`
}

// ReasonParams is the free-text reason recorded with a change.
type ReasonParams struct {
	Reason string `param:"reason" doc:"why (recorded with the change)"`
}

// RealmParams is the Keycloak realm an action acts in.
type RealmParams struct {
	Realm string `param:"realm,required" doc:"Keycloak realm"`
}

// UserParams names a Keycloak user of a realm.
type UserParams struct {
	RealmParams
	UserID string `param:"user_id,required" doc:"Keycloak user id"`
}

// PVEResolveAssetParams are the parameters of [PVEResolveAsset].
type PVEResolveAssetParams struct{ AssetParams }

// PVEIsolateParams are the parameters of [PVEIsolate].
type PVEIsolateParams struct {
	AssetParams
	Method string   `param:"method" default:"firewall" enum:"firewall,link_down" doc:"how to isolate"`
	Allow  CIDRList `param:"allow" doc:"addresses still allowed (management, evidence collection)"`
	ReasonParams
}

// PVEUnisolateParams are the parameters of [PVEUnisolate].
type PVEUnisolateParams struct {
	AssetParams
	Method string `param:"method" default:"firewall" enum:"firewall,link_down" doc:"how it was isolated"`
	ReasonParams
}

// PVESnapshotParams are the parameters of [PVESnapshot].
type PVESnapshotParams struct {
	AssetParams
	Name       string `param:"name" doc:"snapshot name (default: derived from the incident id)"`
	IncludeRAM bool   `param:"include_ram" default:"false" doc:"include memory state"`
}

// PVECollectEvidenceParams are the parameters of [PVECollectEvidence].
type PVECollectEvidenceParams struct {
	AssetParams
	Window time.Duration `param:"window" default:"1h" doc:"how far back to collect"`
}

// PVEStopParams are the parameters of [PVEStop].
type PVEStopParams struct {
	AssetParams
	ReasonParams
}

// PVEShutdownParams are the parameters of [PVEShutdown].
type PVEShutdownParams struct {
	AssetParams
	Force   bool          `param:"force" default:"false" doc:"stop forcibly after the timeout"`
	Timeout time.Duration `param:"timeout" default:"2m" doc:"grace period"`
	ReasonParams
}

// PVEStartParams are the parameters of [PVEStart].
type PVEStartParams struct{ AssetParams }

// PVEBackupParams are the parameters of [PVEBackup].
type PVEBackupParams struct {
	AssetParams
	Storage string `param:"storage" doc:"target storage (default: the worker's IRU_PVE_BACKUP_STORAGE)"`
	Mode    string `param:"mode" default:"snapshot" enum:"snapshot,suspend,stop" doc:"vzdump mode"`
}

// PVERestoreParams are the parameters of [PVERestore].
type PVERestoreParams struct {
	AssetParams
	From    string `param:"from,required" doc:"backup volid (storage:backup/…) or snapshot name"`
	Storage string `param:"storage" doc:"target storage for a backup restore"`
}

// PVERotateTokenParams are the parameters of [PVERotateToken].
type PVERotateTokenParams struct {
	TokenID string `param:"token_id,required" doc:"user@realm!tokenid"`
	ReasonParams
}

// NetHealthProbeParams are the parameters of [NetHealthProbe].
type NetHealthProbeParams struct {
	Asset        string        `param:"asset" doc:"asset whose service is probed (default: the incident's asset)"`
	Target       string        `param:"target" doc:"a target on the allow-list IRU_PROBE_TARGETS (URL or host:port); anything else is refused"`
	Retries      int           `param:"retries" default:"3" doc:"attempts before failing"`
	Timeout      time.Duration `param:"timeout" default:"5s" doc:"per attempt"`
	ExpectStatus int           `param:"expect_status" doc:"HTTP status the service must answer (default: any 2xx or 3xx)"`
}

// Validate checks the probe's bounds.
func (p NetHealthProbeParams) Validate() error {
	var errs []error
	if p.Retries < 1 || p.Retries > 20 {
		errs = append(errs, fmt.Errorf("parameter retries: %d is not in [1, 20]", p.Retries))
	}
	if p.Timeout <= 0 {
		errs = append(errs, errors.New("parameter timeout: must be positive"))
	}
	if p.ExpectStatus != 0 && (p.ExpectStatus < 100 || p.ExpectStatus > 599) {
		errs = append(errs, fmt.Errorf("parameter expect_status: %d is not an HTTP status", p.ExpectStatus))
	}
	return errors.Join(errs...)
}

// KCResolveUserParams are the parameters of [KCResolveUser].
type KCResolveUserParams struct {
	RealmParams
	Username string `param:"username,required" doc:"username"`
}

// KCListSessionsParams are the parameters of [KCListSessions].
type KCListSessionsParams struct{ UserParams }

// KCDisableUserParams are the parameters of [KCDisableUser].
type KCDisableUserParams struct {
	UserParams
	ReasonParams
}

// KCEnableUserParams are the parameters of [KCEnableUser].
type KCEnableUserParams struct {
	UserParams
	ReasonParams
}

// KCLogoutUserParams are the parameters of [KCLogoutUser].
type KCLogoutUserParams struct{ UserParams }

// KCDeleteSessionParams are the parameters of [KCDeleteSession].
type KCDeleteSessionParams struct {
	RealmParams
	SessionID string `param:"session_id,required" doc:"session id"`
}

// KCRevokeRealmParams are the parameters of [KCRevokeRealm].
type KCRevokeRealmParams struct {
	RealmParams
	Push bool `param:"push" default:"true" doc:"push not-before to registered clients"`
}

// KCRotateClientSecretParams are the parameters of [KCRotateClientSecret].
type KCRotateClientSecretParams struct {
	RealmParams
	ClientID string `param:"client_id,required" doc:"clientId"`
}

// KCCollectEventsParams are the parameters of [KCCollectEvents].
type KCCollectEventsParams struct {
	RealmParams
	UserID string        `param:"user_id" doc:"only this user's events"`
	Window time.Duration `param:"window" default:"24h" doc:"how far back to collect"`
}

// Validate checks the window.
func (p KCCollectEventsParams) Validate() error {
	if p.Window <= 0 {
		return errors.New("parameter window: must be positive")
	}
	return nil
}

// KeysRotateKEKParams are the parameters of [KeysRotateKEK].
type KeysRotateKEKParams struct {
	KeyLabel string `param:"key_label,required" doc:"HSM key label"`
	ReasonParams
}

// IntakeKeyRefOutputPrefix prefixes the per-detector outputs of
// [KeysRotateIntakeKeys]: "secret_ref_<detector>" is the secret reference
// of the detector's new key.
const IntakeKeyRefOutputPrefix = "secret_ref_"

// KeysRotateIntakeKeysParams are the parameters of [KeysRotateIntakeKeys].
type KeysRotateIntakeKeysParams struct {
	Source string `param:"source" doc:"only this detector source (default: all)"`
	ReasonParams
}

// NotifySendParams are the parameters of [NotifySend].
type NotifySendParams struct {
	Event   string `param:"event,required" doc:"opened, contained, escalation, resolved …"`
	Channel string `param:"channel" default:"security-team" doc:"notification channel or tier"`
	Message string `param:"message" doc:"text for people"`
	// Severity chooses recipient lists by severity (e-mail).
	Severity string `param:"severity" doc:"incident severity, for recipient lists by severity"`
	// Only names the configured channels to send to (comma-separated);
	// empty: every channel that takes the event. The incident sends a
	// notification its first attempt did not deliver again to those
	// channels only.
	Only string `param:"only" doc:"comma-separated channel names to deliver to (empty: every channel that takes the event)"`
}

// ComplianceNotifyParams are the parameters of [ComplianceNotify].
type ComplianceNotifyParams struct {
	Regime     string        `param:"regime,required" enum:"gdpr,pci-dss" doc:"regulation"`
	Deadline   time.Duration `param:"deadline" default:"72h" doc:"time allowed from awareness"`
	AwareSince time.Time     `param:"aware_since,required" doc:"RFC 3339 time the clock starts"`
	Message    string        `param:"message" doc:"text for people"`
}

// Validate checks the deadline.
func (p ComplianceNotifyParams) Validate() error {
	if p.Deadline <= 0 {
		return errors.New("parameter deadline: must be positive")
	}
	return nil
}

// ReportGenerateParams are the parameters of [ReportGenerate].
type ReportGenerateParams struct {
	Format string `param:"format" default:"markdown" enum:"markdown,json" doc:"report format"`
}

// PVEFirewallEnableParams are the parameters of [PVEFirewallEnable].
type PVEFirewallEnableParams struct {
	Scope string `param:"scope" default:"datacenter" enum:"datacenter,container" doc:"the datacenter firewall, or one container's"`
	Node  string `param:"node" doc:"the container's node (scope container)"`
	VMID  int    `param:"vmid" doc:"the container's vmid (scope container)"`
	// Evidence is the failing control result whose finding names this fix.
	Evidence string `param:"evidence,required" doc:"evidence reference of the failing control result whose finding names this fix and target"`
	ReasonParams
}

// Validate checks that a container scope names the container and a
// datacenter scope does not.
func (p PVEFirewallEnableParams) Validate() error {
	switch {
	case p.Scope == "container" && (p.Node == "" || p.VMID == 0):
		return errors.New("scope container needs node and vmid")
	case p.Scope == "datacenter" && (p.Node != "" || p.VMID != 0):
		return errors.New("scope datacenter takes no node or vmid")
	}
	return nil
}

// PVEFirewallRestoreParams are the parameters of [PVEFirewallRestore].
type PVEFirewallRestoreParams struct {
	Node     string `param:"node,required" doc:"the container's node"`
	VMID     int    `param:"vmid" doc:"the container's vmid (required)"`
	Evidence string `param:"evidence,required" doc:"evidence reference of the control's last passing check (its Observed holds the container's firewall)"`
	ReasonParams
}

// KCDisableDirectGrantsParams are the parameters of [KCDisableDirectGrants].
type KCDisableDirectGrantsParams struct {
	RealmParams
	ClientID string `param:"client_id,required" doc:"clientId"`
	// Evidence is the failing control result whose finding names this fix.
	Evidence string `param:"evidence,required" doc:"evidence reference of the failing control result whose finding names this fix and target"`
	ReasonParams
}

// ControlsRecheckParams are the parameters of [ControlsCollect] and
// [ControlsRecheck].
type ControlsRecheckParams struct {
	Control string `param:"control,required" doc:"the control's id in the controls file"`
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	cidrListType = reflect.TypeFor[CIDRList]()
)

// paramField is one parameter of a params struct: its declaration and where
// it lives in the struct.
type paramField struct {
	Param
	index []int
}

// paramFields returns the parameters a params struct declares, in field
// order (embedded structs in place). It panics on a field it cannot decode:
// the catalog is built at init, so a bad declaration fails every test.
func paramFields(t reflect.Type) []paramField {
	var out []paramField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for _, sub := range paramFields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		tag, ok := f.Tag.Lookup("param")
		if !ok {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		p := Param{Name: name, Required: opts == "required", Default: f.Tag.Get("default"), Doc: f.Tag.Get("doc")}
		switch {
		case f.Type == durationType:
			p.Kind = KindDuration
		case f.Type == timeType:
			p.Kind = KindTime
		case f.Type == cidrListType:
			p.Kind = KindCIDRList
		case f.Type.Kind() == reflect.String:
			p.Kind = KindString
			if e := f.Tag.Get("enum"); e != "" {
				p.Kind, p.Allowed = KindEnum, strings.Split(e, ",")
			}
		case f.Type.Kind() == reflect.Int:
			p.Kind = KindInt
		case f.Type.Kind() == reflect.Bool:
			p.Kind = KindBool
		default:
			panic(fmt.Sprintf("activities: parameter %s of %s has unsupported type %s", name, t, f.Type))
		}
		out = append(out, paramField{Param: p, index: []int{i}})
	}
	return out
}

// set parses v by the parameter's kind into the field of dst.
func (pf paramField) set(dst reflect.Value, v string) error {
	if err := pf.Validate(v); err != nil {
		return err
	}
	f := dst.FieldByIndex(pf.index)
	switch pf.Kind {
	case KindString, KindEnum:
		f.SetString(v)
	case KindInt:
		i, _ := strconv.ParseInt(v, 10, 64)
		f.SetInt(i)
	case KindBool:
		b, _ := strconv.ParseBool(v)
		f.SetBool(b)
	case KindDuration:
		d, _ := ParseDuration(v)
		f.SetInt(int64(d))
	case KindTime:
		t, _ := time.Parse(time.RFC3339, v)
		f.Set(reflect.ValueOf(t))
	case KindCIDRList:
		l, _ := ParseCIDRList(v)
		f.Set(reflect.ValueOf(CIDRList(l)))
	}
	return nil
}

// Template reports whether a parameter value is a template, rendered by the
// workflow before the action runs (checked for its kind only then).
func Template(v string) bool { return strings.Contains(v, "{{") }

// ParamError is one problem with an action's parameters.
type ParamError struct {
	// Name is the parameter ("" for a check that spans parameters).
	Name string
	// Unknown is set when the action has no parameter Name.
	Unknown bool
	// Missing is set when the required parameter Name is not given.
	Missing bool
	Err     error
}

func (e ParamError) Error() string { return e.Err.Error() }

// decodeInto decodes params into the params struct dst points to: unknown
// names, missing required parameters and malformed values are errors (all of
// them); an empty or missing value takes the declared default. Template
// values are skipped when skipTemplates is set (the loader checks them
// before they are rendered), and so is the struct's Validate method.
func decodeInto(dst any, params map[string]string, skipTemplates bool) []ParamError {
	v := reflect.ValueOf(dst).Elem()
	fields := paramFields(v.Type())
	var errs []ParamError
	for _, k := range slices.Sorted(mapKeys(params)) {
		if !slices.ContainsFunc(fields, func(f paramField) bool { return f.Name == k }) {
			errs = append(errs, ParamError{Name: k, Unknown: true, Err: fmt.Errorf("no parameter %q", k)})
		}
	}
	templated := false
	for _, f := range fields {
		raw := strings.TrimSpace(params[f.Name])
		if skipTemplates && Template(raw) {
			templated = true
			continue
		}
		if raw == "" {
			raw = f.Default
		}
		if raw == "" {
			if f.Required {
				errs = append(errs, ParamError{Name: f.Name, Missing: true, Err: fmt.Errorf("parameter %s is required", f.Name)})
			}
			continue
		}
		if err := f.set(v, raw); err != nil {
			errs = append(errs, ParamError{Name: f.Name, Err: err})
		}
	}
	if len(errs) == 0 && !templated {
		if val, ok := dst.(interface{ Validate() error }); ok {
			if err := val.Validate(); err != nil {
				errs = append(errs, ParamError{Err: err})
			}
		}
	}
	return errs
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// DecodeParams decodes an action's rendered parameters into its params
// struct P, which must be the struct the catalog declares for in.Action.
// Any problem is a final [ErrTypeBadParams] error naming the action.
func DecodeParams[P any](in ActionInput) (P, error) {
	var p P
	if a, err := Lookup(in.Action); err == nil && a.params != reflect.TypeFor[P]() {
		return p, NewFinalError(ErrTypeBadParams, fmt.Sprintf("%s: parameters decoded as %s, the catalog declares %v", in.Action, reflect.TypeFor[P](), a.params), nil)
	}
	if errs := decodeInto(&p, in.Params, false); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return p, NewFinalError(ErrTypeBadParams, fmt.Sprintf("%s: %s", in.Action, strings.Join(msgs, "; ")), nil)
	}
	return p, nil
}

// CheckParams checks the parameters a playbook gives action a before they
// are rendered, by decoding them into the action's params struct: every name
// declared, every literal value of its kind, every required one given; the
// struct's Validate method runs when no value is a template.
func (a Action) CheckParams(params map[string]string) []ParamError {
	if a.params == nil {
		var errs []ParamError
		for _, k := range slices.Sorted(mapKeys(params)) {
			errs = append(errs, ParamError{Name: k, Unknown: true, Err: fmt.Errorf("no parameter %q", k)})
		}
		return errs
	}
	return decodeInto(reflect.New(a.params).Interface(), params, true)
}

// paramsOf returns the parameter declarations of params struct P.
func paramsOf[P any]() (reflect.Type, []Param) {
	t := reflect.TypeFor[P]()
	fields := paramFields(t)
	out := make([]Param, len(fields))
	for i, f := range fields {
		out[i] = f.Param
	}
	return t, out
}
