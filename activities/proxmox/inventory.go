package proxmox

import (
	"context"
	"net/netip"
	"sort"
	"strings"

	goprox "github.com/luthermonson/go-proxmox"
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
