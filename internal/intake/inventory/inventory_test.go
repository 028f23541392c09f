package inventory

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/parse"
)

type fakeSource struct {
	mu     sync.Mutex
	assets []Asset
	err    error
	calls  atomic.Int32
	delay  time.Duration
}

func (f *fakeSource) Assets(ctx context.Context) ([]Asset, error) {
	f.calls.Add(1)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Asset(nil), f.assets...), f.err
}

func (f *fakeSource) set(a []Asset, err error) {
	f.mu.Lock()
	f.assets, f.err = a, err
	f.mu.Unlock()
}

var cluster = []Asset{
	{Name: "web-1", Node: "pve1", VMID: 121, Hostname: "web-1.lxc.example.org", IPs: []string{"10.10.0.21/24", "fd00::21"}, Aliases: []string{"3ad7b26ded6d"}, Tags: []string{"prod"}},
	{Name: "db-1", Node: "pve2", VMID: 122, IPs: []string{"10.10.0.22"}},
	{Name: "twin-a", Node: "pve1", VMID: 130, Aliases: []string{"shared"}},
	{Name: "twin-b", Node: "pve2", VMID: 131, Aliases: []string{"shared"}},
}

func h(kind parse.HintKind, v string) parse.AssetHint { return parse.AssetHint{Kind: kind, Value: v} }

func TestResolve(t *testing.T) {
	src := &fakeSource{assets: cluster}
	inv := New(src, Options{})
	if err := inv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		hints  []parse.AssetHint
		want   string
		mapped bool
	}{
		{"name", []parse.AssetHint{h(parse.HintName, "web-1")}, "web-1", true},
		{"name case", []parse.AssetHint{h(parse.HintName, "WEB-1")}, "web-1", true},
		{"hostname", []parse.AssetHint{h(parse.HintHostname, "web-1.lxc.example.org")}, "web-1", true},
		{"fqdn first label", []parse.AssetHint{h(parse.HintHostname, "db-1.lxc.example.org")}, "db-1", true},
		{"vmid", []parse.AssetHint{h(parse.HintVMID, "122")}, "db-1", true},
		{"vmid as name", []parse.AssetHint{h(parse.HintName, "121")}, "web-1", true},
		{"ip", []parse.AssetHint{h(parse.HintIP, "10.10.0.21")}, "web-1", true},
		{"ipv6", []parse.AssetHint{h(parse.HintIP, "fd00:0::21")}, "web-1", true},
		{"ip as name", []parse.AssetHint{h(parse.HintName, "10.10.0.22")}, "db-1", true},
		{"alias", []parse.AssetHint{h(parse.HintName, "3ad7b26ded6d")}, "web-1", true},
		{"first hint wins", []parse.AssetHint{h(parse.HintName, "db-1"), h(parse.HintVMID, "121")}, "db-1", true},
		{"later hint", []parse.AssetHint{h(parse.HintName, "nope"), h(parse.HintVMID, "121")}, "web-1", true},
		{"ambiguous alias", []parse.AssetHint{h(parse.HintName, "shared")}, "shared", false},
		{"node alone", []parse.AssetHint{h(parse.HintNode, "pve1")}, Unknown, false},
		{"unknown", []parse.AssetHint{h(parse.HintNode, "pve1"), h(parse.HintName, "ghost-7")}, "ghost-7", false},
		{"none", nil, Unknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := inv.Resolve(context.Background(), tt.hints)
			if m.Asset.Name != tt.want || m.Mapped != tt.mapped {
				t.Errorf("Resolve = %q mapped=%v, want %q mapped=%v", m.Asset.Name, m.Mapped, tt.want, tt.mapped)
			}
			if tt.mapped && tt.want == "web-1" && (m.Asset.Node != "pve1" || m.Asset.VMID != 121) {
				t.Errorf("canonical asset = %+v", m.Asset)
			}
		})
	}
}

func TestMissRefreshRateLimited(t *testing.T) {
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	src := &fakeSource{}
	inv := New(src, Options{MissRefreshEvery: time.Minute, Now: func() time.Time { return *clock.Load() }})
	ctx := context.Background()
	hint := []parse.AssetHint{h(parse.HintName, "web-1")}

	if m := inv.Resolve(ctx, hint); m.Mapped {
		t.Fatal("mapped against an empty source")
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("source calls after first miss = %d, want 1", got)
	}
	src.set(cluster, nil)
	if m := inv.Resolve(ctx, hint); m.Mapped {
		t.Fatal("refreshed within the rate limit")
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("source calls within the limit = %d, want 1", got)
	}
	later := now.Add(61 * time.Second)
	clock.Store(&later)
	if m := inv.Resolve(ctx, hint); !m.Mapped || m.Asset.Name != "web-1" {
		t.Fatalf("after the limit: %+v", m)
	}
	if got := src.calls.Load(); got != 2 {
		t.Fatalf("source calls = %d, want 2", got)
	}
}

func TestRefreshFailureKeepsIndex(t *testing.T) {
	src := &fakeSource{assets: cluster}
	inv := New(src, Options{})
	if err := inv.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	src.set(nil, errors.New("proxmox down"))
	if err := inv.Refresh(context.Background()); err == nil {
		t.Fatal("refresh error not returned")
	}
	if inv.Len() != 4 {
		t.Fatalf("index lost after a failed refresh: %d assets", inv.Len())
	}
}

func TestConcurrentMissesShareOneRefresh(t *testing.T) {
	src := &fakeSource{assets: cluster, delay: 50 * time.Millisecond}
	inv := New(src, Options{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if m := inv.Resolve(context.Background(), []parse.AssetHint{h(parse.HintName, "db-1")}); !m.Mapped {
				t.Error("not mapped after the shared refresh")
			}
		})
	}
	wg.Wait()
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("source calls = %d, want 1", got)
	}
}
