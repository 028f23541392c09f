package asset

import (
	"slices"
	"testing"
)

var inventory = []Asset{
	{Name: "web-1", Node: "pve1", VMID: 121, Hostname: "web-1.lxc.example.org", IPs: []string{"10.10.0.21/24", "fd00::21", "10.10.0.21"},
		Aliases: []string{"3ad7b26ded6d", "WEB-1"}, Tags: []string{"prod", "dmz"}},
	{Name: "db-1", Node: "pve2", VMID: 122, IPs: []string{"10.10.0.22"}, Tags: []string{"Prod"}},
	{Name: "twin-a", Node: "pve1", VMID: 130, Aliases: []string{"shared"}},
	{Name: "twin-b", Node: "pve2", VMID: 131, Aliases: []string{"shared"}},
	{Node: "pve3", VMID: 999}, // no name: not indexed
}

func names(l []Asset) []string {
	out := []string{}
	for _, a := range l {
		out = append(out, a.Name)
	}
	return out
}

func TestIndex(t *testing.T) {
	ix := NewIndex(inventory)
	if ix.Len() != 4 {
		t.Fatalf("Len = %d, want 4", ix.Len())
	}
	tests := []struct {
		name string
		got  []Asset
		want []string
	}{
		{"name", ix.ByName("web-1"), []string{"web-1"}},
		{"name, other case, spaces", ix.ByName(" Web-1 "), []string{"web-1"}},
		{"hostname", ix.ByName("web-1.lxc.example.org"), []string{"web-1"}},
		{"alias", ix.ByName("3ad7b26ded6d"), []string{"web-1"}},
		{"alias shared by two", ix.ByName("shared"), []string{"twin-a", "twin-b"}},
		{"unknown name", ix.ByName("web-2"), []string{}},
		{"empty name", ix.ByName(""), []string{}},
		{"vmid", ix.ByVMID("122"), []string{"db-1"}},
		{"vmid of an unnamed entry", ix.ByVMID("999"), []string{}},
		{"vmid not a number", ix.ByVMID("12a"), []string{}},
		{"vmid zero", ix.ByVMID("0"), []string{}},
		{"address with prefix in the inventory", ix.ByIP("10.10.0.21"), []string{"web-1"}},
		{"IPv4-mapped address", ix.ByIP("::ffff:10.10.0.22"), []string{"db-1"}},
		{"IPv6 address", ix.ByIP("fd00::21"), []string{"web-1"}},
		{"not an address", ix.ByIP("web-1"), []string{}},
		{"tag on two", ix.ByTag("PROD"), []string{"web-1", "db-1"}},
		{"tag on one", ix.ByTag("dmz"), []string{"web-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(tt.got); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if a := ix.ByVMID("121"); len(a) != 1 || a[0].Node != "pve1" || a[0].VMID != 121 {
		t.Errorf("ByVMID(121) = %+v", a)
	}
}
