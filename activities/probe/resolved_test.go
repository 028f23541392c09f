package probe

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/iru-responder/responder/activities"
)

// network stands in for the hosts a probe can reach: each address is a
// host with its own HTTP server, and the network records which hosts were
// asked for what (a dial of an unknown address fails and is recorded too).
type network struct {
	mu    sync.Mutex
	hosts map[string]*httptest.Server // ip → its server
	seen  map[string]int              // "ip path" → requests served; "ip dial" for unknown hosts
}

func newNetwork(t *testing.T, ips ...string) *network {
	t.Helper()
	n := &network{hosts: map[string]*httptest.Server{}, seen: map[string]int{}}
	for _, ip := range ips {
		n.hosts[ip] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.mu.Lock()
			n.seen[ip+" "+r.URL.Path]++
			n.mu.Unlock()
			_, _ = w.Write([]byte("ok"))
		}))
		t.Cleanup(n.hosts[ip].Close)
	}
	return n
}

func (n *network) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ip, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	srv, ok := n.hosts[ip]
	if !ok {
		n.mu.Lock()
		n.seen[ip+" dial"]++
		n.mu.Unlock()
		return nil, fmt.Errorf("dial %s: no route to host", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, srv.Listener.Addr().String())
}

// attach makes a's HTTP probes travel over the network.
func (n *network) attach(a *Activities) {
	a.hc.Transport = &http.Transport{DialContext: n.dial, DisableKeepAlives: true}
}

// take returns what the hosts saw since the last take.
func (n *network) take() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.seen
	n.seen = map[string]int{}
	return out
}

// refInventory is a fake inventory that records how it was asked: by ref
// (answered from refs, refusing a ref it does not hold as the real
// inventory refuses a container that no longer carries the asset's name)
// or by name.
type refInventory struct {
	refs   map[activities.AssetRef]string
	byName map[string]string
	mu     sync.Mutex
	asked  []string
}

func (i *refInventory) ResolvedAddr(_ context.Context, ref activities.AssetRef) (netip.Addr, error) {
	i.mu.Lock()
	i.asked = append(i.asked, fmt.Sprintf("ref %s@%s/%d", ref.Name, ref.Node, ref.VMID))
	i.mu.Unlock()
	a, ok := i.refs[ref]
	if !ok {
		return netip.Addr{}, activities.NewFinalError(activities.ErrTypePrecondition, fmt.Sprintf("%s/%d is no longer asset %q", ref.Node, ref.VMID, ref.Name), nil)
	}
	return netip.MustParseAddr(a), nil
}

func (i *refInventory) AssetAddr(_ context.Context, asset string) (netip.Addr, error) {
	i.mu.Lock()
	i.asked = append(i.asked, "name "+asset)
	i.mu.Unlock()
	a, ok := i.byName[asset]
	if !ok {
		return netip.Addr{}, activities.NewFinalError(activities.ErrTypeNotFound, "no asset "+asset, nil)
	}
	return netip.MustParseAddr(a), nil
}

func (i *refInventory) take() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := i.asked
	i.asked = nil
	return out
}

// TestResolvedTarget: the probe of the incident's asset goes to the
// address of the container the intake resolved, asked for by that ref and
// never by name; a run without a resolved asset, or a step naming another
// asset, looks the address up by name and says so; a ref the inventory
// refuses fails the step without any fallback and nothing is contacted.
func TestResolvedTarget(t *testing.T) {
	web := activities.AssetRef{Name: "web", Node: "pve1", VMID: 100}
	hosts := newNetwork(t, "10.0.0.10", "10.0.0.20", "10.0.0.30")
	inv := &refInventory{
		refs:   map[activities.AssetRef]string{web: "10.0.0.10"},
		byName: map[string]string{"web": "10.0.0.20", "db": "10.0.0.30"},
	}
	a, err := New(Config{Scheme: "http", Port: 80, Path: "/healthz", RetryDelay: time.Millisecond}, inv)
	if err != nil {
		t.Fatal(err)
	}
	hosts.attach(a)
	for _, tc := range []struct {
		name     string
		resolved *activities.AssetRef
		params   map[string]string
		asked    []string
		seen     map[string]int
		from     string // in the summary, or in the error when errType is set
		errType  string
	}{
		{"resolved asset", &web, nil, []string{"ref web@pve1/100"}, map[string]int{"10.0.0.10 /healthz": 1}, "CT 100 on pve1, as the intake resolved it", ""},
		{"resolved asset named by the step", &web, map[string]string{"asset": "WEB"}, []string{"ref web@pve1/100"}, map[string]int{"10.0.0.10 /healthz": 1}, "as the intake resolved it", ""},
		{"manual run", nil, nil, []string{"name web"}, map[string]int{"10.0.0.20 /healthz": 1}, "looked up by name: the run carries no asset resolved by the intake", ""},
		{"another asset", &web, map[string]string{"asset": "db"}, []string{"name db"}, map[string]int{"10.0.0.30 /healthz": 1}, "looked up by name: the intake resolved web, not this asset", ""},
		{"ref of another container", &activities.AssetRef{Name: "web", Node: "pve2", VMID: 103}, nil,
			[]string{"ref web@pve2/103"}, map[string]int{}, "no longer asset", activities.ErrTypePrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := activities.ActionInput{Action: activities.NetHealthProbe, Asset: "web", Params: tc.params, Resolved: tc.resolved}
			res, err := runInput(t, a, in)
			if got := inv.take(); !slices.Equal(got, tc.asked) {
				t.Errorf("inventory asked %q, want %q", got, tc.asked)
			}
			if got := hosts.take(); !maps.Equal(got, tc.seen) {
				t.Errorf("hosts saw %v, want %v", got, tc.seen)
			}
			if tc.errType != "" {
				var ae *temporal.ApplicationError
				if !errors.As(err, &ae) || ae.Type() != tc.errType || !ae.NonRetryable() || !strings.Contains(err.Error(), tc.from) {
					t.Fatalf("probe = %+v, %v; want a final %s naming %q", res, err, tc.errType, tc.from)
				}
				return
			}
			if err != nil || res.Outputs["healthy"] != "true" || !strings.Contains(res.Summary, tc.from) {
				t.Fatalf("probe = %+v, %v; want healthy with %q in the summary", res, err, tc.from)
			}
		})
	}
	t.Run("dry run says where the target comes from", func(t *testing.T) {
		in := activities.ActionInput{Action: activities.NetHealthProbe, Asset: "web", Resolved: &web, DryRun: true}
		res, err := runInput(t, a, in)
		if err != nil || len(res.Plan) != 1 || !strings.Contains(res.Plan[0], "http://10.0.0.10:80/healthz") || !strings.Contains(res.Plan[0], "as the intake resolved it") {
			t.Fatalf("dry run = %+v, %v", res, err)
		}
		if got := hosts.take(); len(got) != 0 {
			t.Fatalf("a dry run contacted %v", got)
		}
		inv.take()
	})
	t.Run("allow-list entry wins over the inventory", func(t *testing.T) {
		b, err := New(Config{Scheme: "http", Port: 80, Path: "/healthz", RetryDelay: time.Millisecond,
			Targets: []string{"web=http://10.0.0.30:8080/status"}}, inv)
		if err != nil {
			t.Fatal(err)
		}
		hosts.attach(b)
		res, err := runInput(t, b, activities.ActionInput{Action: activities.NetHealthProbe, Asset: "web", Resolved: &web})
		if err != nil || !strings.Contains(res.Summary, "allow-list entry of web") {
			t.Fatalf("probe = %+v, %v", res, err)
		}
		if got := inv.take(); len(got) != 0 {
			t.Fatalf("inventory asked %q for an allow-listed asset", got)
		}
		if got := hosts.take(); !maps.Equal(got, map[string]int{"10.0.0.30 /status": 1}) {
			t.Fatalf("hosts saw %v", got)
		}
	})
}
