package pve

import (
	"net/url"
	"strings"
	"testing"
)

// TestRawProtocol covers what go-proxmox cannot express: PVE's error
// statuses, reasons and bodies, body formats and auth edge cases.
func TestRawProtocol(t *testing.T) {
	s := startSim(t, Options{})
	const js = "application/json"
	const form = "application/x-www-form-urlencoded"
	cases := []struct {
		name        string
		method      string
		path        string
		ctype, body string
		headers     map[string]string
		status      int
		reason      string
		errKey      string
		errMsg      string
	}{
		{name: "unknown path", method: "GET", path: "/api2/json/nodes/pve1/bogus", status: 501, reason: "Method 'GET /nodes/pve1/bogus' not implemented"},
		{name: "unknown method", method: "DELETE", path: "/api2/json/version", status: 501, reason: "Method 'DELETE /version' not implemented"},
		{name: "outside api2", method: "GET", path: "/nope", status: 501, reason: "Method 'GET /nope' not implemented"},
		{name: "missing CT", method: "GET", path: "/api2/json/nodes/pve2/lxc/100/status/current", status: 500, reason: "Configuration file 'nodes/pve2/lxc/100.conf' does not exist"},
		{name: "unknown param", method: "GET", path: "/api2/json/nodes/pve1/lxc/100/config?foo=1", status: 400, reason: "Parameter verification failed.",
			errKey: "foo", errMsg: "property is not defined in schema and the schema does not allow additional properties"},
		{name: "wrong type", method: "GET", path: "/api2/json/nodes/pve1/lxc/abc/status/current", status: 400, errKey: "vmid", errMsg: "type check ('integer') failed - got 'abc'"},
		{name: "vmid minimum", method: "GET", path: "/api2/json/nodes/pve1/lxc/99/config", status: 400, errKey: "vmid", errMsg: "value must have a minimum value of 100"},
		{name: "bad node name", method: "GET", path: "/api2/json/nodes/pve_1/status", status: 400, errKey: "node", errMsg: "value does not look like a valid node name"},
		{name: "missing required", method: "POST", path: "/api2/json/nodes/pve1/lxc/100/firewall/rules", ctype: js, body: `{"type":"in"}`, status: 400,
			errKey: "action", errMsg: "property is missing and it is not optional"},
		{name: "enum", method: "GET", path: "/api2/json/cluster/resources?type=lxc", status: 400, errKey: "type", errMsg: "value 'lxc' does not have a value in the enumeration 'vm, storage, node, sdn'"},
		{name: "pattern", method: "POST", path: "/api2/json/nodes/pve1/lxc/100/firewall/rules", ctype: js, body: `{"type":"in","action":"1x"}`, status: 400,
			errKey: "action", errMsg: "value does not match the regex pattern"},
		{name: "boolean spelling", method: "PUT", path: "/api2/json/nodes/pve1/lxc/900/firewall/options", ctype: form, body: "enable=maybe", status: 400,
			errKey: "enable", errMsg: "type check ('boolean') failed - got 'maybe'"},
		{name: "property string key", method: "PUT", path: "/api2/json/nodes/pve1/lxc/900/config", ctype: js, body: `{"net0":"name=eth0,bogus=1"}`, status: 400,
			errKey: "net0", errMsg: "invalid format - format error\nnet0.bogus: property is not defined in schema and the schema does not allow additional properties\n"},
		{name: "property string value", method: "PUT", path: "/api2/json/nodes/pve1/lxc/900/config", ctype: js, body: `{"net0":"name=eth0,firewall=maybe"}`, status: 400,
			errKey: "net0", errMsg: "invalid format - format error\nnet0.firewall: type check ('boolean') failed - got 'maybe'\n"},
		{name: "storage id", method: "GET", path: "/api2/json/nodes/pve1/storage/1bad/status", status: 400, errKey: "storage", errMsg: "storage ID '1bad' contains illegal characters"},
		{name: "configid list", method: "PUT", path: "/api2/json/nodes/pve1/lxc/900/config", ctype: js, body: `{"delete":"tags,9x"}`, status: 400, errKey: "delete", errMsg: "invalid configuration ID '9x'"},
		{name: "json structure", method: "PUT", path: "/api2/json/nodes/pve1/lxc/900/config", ctype: js, body: `{"tags":{"a":1}}`, status: 400, errKey: "tags"},
		{name: "body on GET", method: "GET", path: "/api2/json/version", ctype: js, body: `{}`, status: 501, reason: "Unexpected content for method 'GET'"},
		{name: "no auth", method: "GET", path: "/api2/json/nodes", headers: map[string]string{"Authorization": ""}, status: 401, reason: "No ticket"},
		{name: "bad token", method: "GET", path: "/api2/json/nodes", headers: map[string]string{"Authorization": "PVEAPIToken=" + LabResponderTokenID + "=nope"}, status: 401},
		{name: "token space separator", method: "GET", path: "/api2/json/nodes", headers: map[string]string{"Authorization": "PVEAPIToken " + LabAuditTokenID + "=" + LabAuditTokenSecret}, status: 200},
		{name: "double slash", method: "GET", path: "/api2/json//nodes//pve1/status", status: 200},
		{name: "form body", method: "PUT", path: "/api2/json/nodes/pve1/lxc/900/config", ctype: form, body: "description=from+form", status: 200},
		{name: "query wins over body", method: "PUT", path: "/api2/json/nodes/pve1/lxc/101/config?description=query", ctype: js, body: `{"description":"json"}`, status: 200},
		{name: "audit token write", method: "PUT", path: "/api2/json/cluster/firewall/options", ctype: js, body: `{"enable":0}`,
			headers: map[string]string{"Authorization": "PVEAPIToken=" + LabAuditTokenID + "=" + LabAuditTokenSecret}, status: 403},
		{name: "nextid taken", method: "GET", path: "/api2/json/cluster/nextid?vmid=100", status: 400, errKey: "vmid", errMsg: "VM 100 already exists"},
		{name: "task malformed", method: "GET", path: "/api2/json/nodes/pve1/tasks/UPID:pve1:1:status/status", status: 400, errKey: "upid", errMsg: "unable to parse worker upid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := raw(t, s, tc.method, tc.path, tc.ctype, tc.body, tc.headers)
			if res.status != tc.status {
				t.Fatalf("status = %d (%s), want %d; body %s", res.status, res.reason, tc.status, res.raw)
			}
			if tc.reason != "" && res.reason != tc.reason {
				t.Fatalf("reason = %q, want %q", res.reason, tc.reason)
			}
			if tc.status >= 400 {
				if _, ok := res.body["data"]; !ok || res.body["data"] != nil {
					t.Fatalf("error body must carry data:null: %s", res.raw)
				}
				if msg, _ := res.body["message"].(string); !strings.HasSuffix(msg, "\n") {
					t.Fatalf("message must end with a newline: %q", msg)
				}
			}
			if tc.status == 400 {
				if res.body["message"] != "Parameter verification failed.\n" {
					t.Fatalf("400 message = %q", res.body["message"])
				}
				errs, _ := res.body["errors"].(map[string]any)
				if tc.errKey != "" {
					got, ok := errs[tc.errKey].(string)
					if !ok || (tc.errMsg != "" && got != tc.errMsg) {
						t.Fatalf("errors[%s] = %q, want %q (all: %v)", tc.errKey, got, tc.errMsg, errs)
					}
				}
			}
		})
	}
	st := s.State()
	if st.Containers[4].Config["description"] != "from form" || st.Containers[1].Config["description"] != "query" {
		t.Fatalf("body handling: 900=%q 101=%q", st.Containers[4].Config["description"], st.Containers[1].Config["description"])
	}
}

func TestTicketCSRF(t *testing.T) {
	s := startSim(t, Options{})
	noToken := map[string]string{"Authorization": ""}
	res := raw(t, s, "POST", "/api2/json/access/ticket", "application/x-www-form-urlencoded",
		url.Values{"username": {LabIRUUser}, "password": {LabIRUPassword}}.Encode(), noToken)
	if res.status != 200 {
		t.Fatalf("form login = %d %s", res.status, res.raw)
	}
	data := res.body["data"].(map[string]any)
	ticket, csrf := data["ticket"].(string), data["CSRFPreventionToken"].(string)
	cookie := "PVEAuthCookie=" + url.QueryEscape(ticket)
	cases := []struct {
		name    string
		method  string
		headers map[string]string
		status  int
	}{
		{"GET needs no CSRF", "GET", map[string]string{"Authorization": "", "Cookie": cookie}, 200},
		{"PUT without CSRF", "PUT", map[string]string{"Authorization": "", "Cookie": cookie}, 401},
		{"PUT with wrong CSRF", "PUT", map[string]string{"Authorization": "", "Cookie": cookie, "CSRFPreventionToken": "00000000:abc"}, 401},
		{"PUT with CSRF", "PUT", map[string]string{"Authorization": "", "Cookie": cookie, "CSRFPreventionToken": csrf}, 200},
		{"forged ticket", "GET", map[string]string{"Authorization": "", "Cookie": "PVEAuthCookie=PVE:root@pam:65F0A1B2::forged"}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := "", ""
			if tc.method == "PUT" {
				body, ct = `{"description":"ticket"}`, "application/json"
			}
			path := "/api2/json/nodes/pve1/lxc/900/config"
			if got := raw(t, s, tc.method, path, ct, body, tc.headers); got.status != tc.status {
				t.Fatalf("status = %d (%s), want %d", got.status, got.reason, tc.status)
			}
		})
	}
	bad := raw(t, s, "POST", "/api2/json/access/ticket", "application/json", `{"username":"root@pam","password":"x"}`, noToken)
	if bad.status != 401 {
		t.Fatalf("bad login = %d", bad.status)
	}
	renew := raw(t, s, "POST", "/api2/json/access/ticket", "application/json", `{"username":"iru@pve","password":"`+ticket+`"}`, noToken)
	if renew.status != 200 {
		t.Fatalf("renewal with ticket = %d %s", renew.status, renew.raw)
	}
}
