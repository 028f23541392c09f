package proxmox

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	goprox "github.com/luthermonson/go-proxmox"

	"github.com/iru-responder/responder/activities"
)

// Container is one LXC container as an asset inventory sees it.
type Container struct {
	Name   string
	Node   string
	VMID   int
	Status string
	Tags   []string
	// IPs are the static addresses of its interfaces (netN ip=/ip6=).
	IPs []string
}

// Containers lists the cluster's LXC containers with their static
// addresses, from the cluster resources and each container's config.
func (a *Activities) Containers(ctx context.Context) ([]Container, error) {
	x := a.call("list containers")
	var res []goprox.ClusterResource
	if err := x.get(ctx, "/cluster/resources?type=vm", &res); err != nil {
		return nil, err
	}
	var out []Container
	for _, r := range res {
		if r.Type != "lxc" {
			continue
		}
		ref := &ctRef{Node: r.Node, VMID: int(r.VMID), Name: r.Name, Tags: r.Tags, Status: r.Status}
		c := Container{Name: r.Name, Node: r.Node, VMID: int(r.VMID), Status: r.Status}
		c.Tags = strings.FieldsFunc(r.Tags, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
		x.ct = ref
		var conf map[string]any
		if err := x.get(ctx, ref.path("/config"), &conf); err != nil {
			return nil, err
		}
		for _, n := range netKeys(conf) {
			kv := parseProps(str(conf[n]))
			for _, k := range []string{"ip", "ip6"} {
				if p, err := netip.ParsePrefix(kv[k]); err == nil {
					c.IPs = append(c.IPs, p.Addr().String())
				}
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VMID < out[j].VMID })
	return out, nil
}

// AssetAddr returns the inventory address of an asset (vmid, hostname,
// tag:<tag> or address, as for every pve.* action): the first static
// address of its interfaces (netN ip=, then ip6=). The health probe
// derives its target from it; an asset without a static address has none
// (NotFound).
func (a *Activities) AssetAddr(ctx context.Context, asset string) (netip.Addr, error) {
	x := a.call("inventory address")
	ct, err := x.resolve(ctx, asset)
	if err != nil {
		return netip.Addr{}, err
	}
	x.ct = ct
	var conf map[string]any
	if err := x.get(ctx, ct.path("/config"), &conf); err != nil {
		return netip.Addr{}, err
	}
	for _, k := range []string{"ip", "ip6"} {
		for _, n := range netKeys(conf) {
			if p, err := netip.ParsePrefix(parseProps(str(conf[n]))[k]); err == nil {
				return p.Addr(), nil
			}
		}
	}
	return netip.Addr{}, final(activities.ErrTypeNotFound, fmt.Sprintf("inventory address of %s: no static address (netN ip=) in its config", ct))
}
