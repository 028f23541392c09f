package proxmox

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"sort"

	goprox "github.com/luthermonson/go-proxmox"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/asset"
	"github.com/iru-responder/responder/internal/intake/inventory"
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
	var list []asset.Asset
	var status []string
	for _, r := range res {
		if r.Type != "lxc" {
			continue
		}
		list = append(list, asset.Asset{Name: r.Name, Node: r.Node, VMID: int(r.VMID), Tags: splitTags(r.Tags)})
		status = append(status, r.Status)
	}
	if err := x.addresses(ctx, list); err != nil {
		return nil, err
	}
	out := make([]Container, len(list))
	for i, c := range list {
		out[i] = Container{Name: c.Name, Node: c.Node, VMID: c.VMID, Status: status[i], Tags: c.Tags, IPs: c.IPs}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VMID < out[j].VMID })
	return out, nil
}

// AssetAddr returns the inventory address of an asset (vmid, hostname,
// tag:<tag> or address, as for every pve.* action): the first static
// address of its interfaces (netN ip=, then ip6=). The health probe
// derives its target from it when the incident carries no asset the
// intake resolved; an asset without a static address has none (NotFound).
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
	return staticAddr(ct, conf)
}

// ResolvedAddr is [Activities.AssetAddr] for an asset the intake resolved:
// one read of the container's config checks that the container at the
// ref's node and vmid still carries the asset's name (as every pve.*
// action checks it) and gives its address; nothing is looked up by name.
func (a *Activities) ResolvedAddr(ctx context.Context, ref activities.AssetRef) (netip.Addr, error) {
	x := a.call("inventory address")
	if err := checkRef(x.action, &ref); err != nil {
		return netip.Addr{}, err
	}
	x.ct = &ctRef{Node: ref.Node, VMID: ref.VMID, Name: ref.Name}
	x.deferred = true
	var conf map[string]any
	if err := x.get(ctx, x.ct.path("/config"), &conf); err != nil {
		return netip.Addr{}, err
	}
	if err := x.checkResolved(conf); err != nil {
		return netip.Addr{}, err
	}
	return staticAddr(x.ct, conf)
}

// PVE's bounds of a guest id, and the form of a node name (a DNS label).
const minVMID, maxVMID = 100, 999999999

var reNodeName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// checkRef refuses a resolved asset whose node or vmid is not a container
// location: both go into API paths, so a node such as "pve2/lxc/103/config?"
// would steer the call to another container.
func checkRef(action string, ref *activities.AssetRef) error {
	if !reNodeName.MatchString(ref.Node) || ref.VMID < minVMID || ref.VMID > maxVMID || ref.Name == "" {
		return final(activities.ErrTypeBadParams, fmt.Sprintf("%s: resolved asset %q at node %q vmid %d is not a container location", action, ref.Name, ref.Node, ref.VMID))
	}
	return nil
}

// staticAddr returns the first static address of a container's interfaces
// (netN ip=, then ip6=) in its config.
func staticAddr(ct *ctRef, conf map[string]any) (netip.Addr, error) {
	for _, k := range []string{"ip", "ip6"} {
		for _, n := range netKeys(conf) {
			if p, err := netip.ParsePrefix(parseProps(str(conf[n]))[k]); err == nil {
				return p.Addr(), nil
			}
		}
	}
	return netip.Addr{}, final(activities.ErrTypeNotFound, fmt.Sprintf("inventory address of %s: no static address (netN ip=) in its config", ct))
}

// Assets lists the containers as the detector intake's asset inventory
// (it implements inventory.Source for `starter serve` and `starter rules`).
func (a *Activities) Assets(ctx context.Context) ([]inventory.Asset, error) {
	cts, err := a.Containers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]inventory.Asset, 0, len(cts))
	for _, ct := range cts {
		out = append(out, inventory.Asset{Name: ct.Name, Node: ct.Node, VMID: ct.VMID, IPs: ct.IPs, Tags: ct.Tags})
	}
	return out, nil
}
