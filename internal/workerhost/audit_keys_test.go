package workerhost

import (
	"slices"
	"testing"

	"github.com/iru-responder/responder/activities"
)

// TestChangedKeys checks each key change names the key it changed, under
// the id the 90-day rotation control looks for (a rotated Proxmox token
// keeps its base name).
func TestChangedKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action string
		params map[string]string
		out    map[string]string
		want   []string
	}{
		{"intake keys", activities.KeysRotateIntakeKeys, nil, map[string]string{"rotated": "falco:k-1a2b,wazuh:k-3c4d"}, []string{"intake:falco", "intake:wazuh"}},
		{"intake keys, none", activities.KeysRotateIntakeKeys, nil, map[string]string{"rotated": ""}, nil},
		{"pve token", activities.PVERotateToken, map[string]string{"token_id": "iru@pve!responder"}, nil, []string{"pve-token:iru@pve!responder"}},
		{"pve token rotated before", activities.PVERotateToken, map[string]string{"token_id": "iru@pve!responder-r0a1b2c3d"}, nil, []string{"pve-token:iru@pve!responder"}},
		{"kc secret, realm given", activities.KCRotateClientSecret, map[string]string{"realm": "ops", "client_id": "iru-api"}, nil, []string{"kc-client-secret:ops/iru-api"}},
		{"kek", activities.KeysRotateKEK, nil, nil, []string{"kek:current"}},
		{"not a key change", activities.PVEIsolate, map[string]string{"asset": "db"}, nil, nil},
	} {
		got := changedKeys(tc.action, activities.ActionInput{Params: tc.params}, activities.ActionResult{Outputs: tc.out}, "iru")
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
