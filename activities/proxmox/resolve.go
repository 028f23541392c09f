package proxmox

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	goprox "github.com/luthermonson/go-proxmox"
	"golang.org/x/sync/errgroup"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/asset"
)

var reNetKey = regexp.MustCompile(`^net[0-9]+$`)

// resolve finds the container of an asset: a vmid ("100"), a hostname
// ("api-gateway"), "tag:<tag>" (exactly one container with the tag) or an
// IP address of one of its interfaces, through the same [asset.Index] the
// intake's inventory uses.
func (x *call) resolve(ctx context.Context, name string) (*ctRef, error) {
	var res []goprox.ClusterResource
	if err := x.get(ctx, "/cluster/resources?type=vm", &res); err != nil {
		return nil, err
	}
	var list []asset.Asset
	status := map[int]string{}
	for _, r := range res {
		if r.Type != "lxc" { // PVE has no type=lxc filter
			continue
		}
		list = append(list, asset.Asset{Name: r.Name, Node: r.Node, VMID: int(r.VMID), Tags: splitTags(r.Tags)})
		status[int(r.VMID)] = r.Status
	}
	sort.Slice(list, func(i, j int) bool { return list[i].VMID < list[j].VMID })
	ix := asset.NewIndex(list)
	var hits []asset.Asset
	how := "name"
	switch {
	case isDigits(name):
		hits, how = ix.ByVMID(name), "vmid"
	case strings.HasPrefix(name, "tag:"):
		hits, how = ix.ByTag(strings.TrimPrefix(name, "tag:")), "tag"
	default:
		hits = ix.ByName(name)
		if _, err := netip.ParseAddr(name); len(hits) == 0 && err == nil {
			if err := x.addresses(ctx, list); err != nil {
				return nil, err
			}
			hits, how = asset.NewIndex(list).ByIP(name), "address"
		}
	}
	refs := make([]*ctRef, len(hits))
	for i, h := range hits {
		refs[i] = &ctRef{Node: h.Node, VMID: h.VMID, Name: h.Name, Tags: strings.Join(h.Tags, ";"), Status: status[h.VMID]}
	}
	switch len(refs) {
	case 0:
		return nil, final(activities.ErrTypeNotFound, fmt.Sprintf("%s: no container matches asset %q (by vmid, name, tag: or IP address)", x.action, name))
	case 1:
		return refs[0], nil
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.String()
	}
	return nil, final(activities.ErrTypeBadParams, fmt.Sprintf("%s: asset %q is ambiguous (%s): %s", x.action, name, how, strings.Join(names, ", ")))
}

// addresses fills in each container's static addresses (netN ip=, ip6=)
// from its config.
func (x *call) addresses(ctx context.Context, list []asset.Asset) error {
	prev := x.ct
	defer func() { x.ct = prev }()
	for i := range list {
		c := &list[i]
		x.ct = &ctRef{Node: c.Node, VMID: c.VMID, Name: c.Name}
		var conf map[string]any
		if err := x.get(ctx, x.ct.path("/config"), &conf); err != nil {
			return err
		}
		for _, n := range netKeys(conf) {
			kv := parseProps(str(conf[n]))
			for _, k := range []string{"ip", "ip6"} {
				if p, err := netip.ParsePrefix(kv[k]); err == nil {
					c.IPs = append(c.IPs, p.Addr().String())
				}
			}
		}
	}
	return nil
}

// verify checks that the container the intake resolved still carries the
// asset's name, with one read of its config, and returns it with its tags
// (its status is read when needed: [call.status]).
func (x *call) verify(ctx context.Context, r *activities.AssetRef) (*ctRef, error) {
	ct := &ctRef{Node: r.Node, VMID: r.VMID}
	x.ct = ct
	var conf map[string]any
	if err := x.get(ctx, ct.path("/config"), &conf); err != nil {
		return nil, err
	}
	ct.Name, ct.Tags = str(conf["hostname"]), str(conf["tags"])
	if !strings.EqualFold(ct.Name, r.Name) {
		return nil, final(activities.ErrTypePrecondition, fmt.Sprintf("%s: %s is no longer asset %q (the intake resolved it there)", x.action, ct, r.Name))
	}
	return ct, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// netKeys returns the netN keys of a config, in index order.
func netKeys(conf map[string]any) []string {
	var out []string
	for k := range conf {
		if reNetKey.MatchString(k) {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i][3:])
		b, _ := strconv.Atoi(out[j][3:])
		return a < b
	})
	return out
}

// parseProps parses a PVE property string "k=v,k2=v2".
func parseProps(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			out[""] = part
			continue
		}
		out[k] = v
	}
	return out
}

// setProp sets key=value in a property string, keeping the order of the
// other keys (appending the key when it is new).
func setProp(s, key, value string) string {
	parts := strings.Split(s, ",")
	found := false
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok && k == key {
			parts[i] = key + "=" + value
			found = true
		}
	}
	if !found {
		parts = append(parts, key+"="+value)
	}
	return strings.Join(parts, ",")
}

// sameProps compares two property strings as key/value sets (PVE may
// re-print them in another key order).
func sameProps(a, b string) bool {
	pa, pb := parseProps(a), parseProps(b)
	if len(pa) != len(pb) {
		return false
	}
	for k, v := range pa {
		if w, ok := pb[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ResolveAsset implements [activities.PVEResolveAsset]: node, vmid, status,
// primary IP, and last_backup, the volid of the newest backup that is not
// one of IRU's own forensic copies ("" if none). Independent reads go
// together: config, status and backup storages first, then the storages'
// backups (and, without a static address, the running container's
// interfaces).
func (a *Activities) ResolveAsset(ctx context.Context, in activities.ActionInput) (activities.ActionResult, error) {
	p, err := activities.DecodeParams[activities.PVEResolveAssetParams](in)
	if err != nil {
		return activities.ActionResult{}, err
	}
	x, err := a.beginDeferred(ctx, in, activities.PVEResolveAsset, p.Asset)
	if err != nil {
		return activities.ActionResult{}, err
	}
	var conf map[string]any
	var storages []string
	status := x.ct.Status
	var g errgroup.Group
	g.Go(func() error { return x.get(ctx, x.ct.path("/config"), &conf) })
	if status == "" {
		g.Go(func() (err error) { status, err = x.status(ctx); return err })
	}
	g.Go(func() (err error) { storages, err = x.backupStorages(ctx); return err })
	if err := g.Wait(); err != nil {
		return activities.ActionResult{}, err
	}
	if err := x.checkResolved(conf); err != nil {
		return activities.ActionResult{}, err
	}
	x.ct.Status = status
	ip := ""
	for _, n := range netKeys(conf) {
		if p, err := netip.ParsePrefix(parseProps(str(conf[n]))["ip"]); err == nil {
			ip = p.Addr().String()
			break
		}
	}
	var last string
	g = errgroup.Group{}
	g.Go(func() (err error) { last, err = x.lastBackupOn(ctx, storages); return err })
	if ip == "" && x.ct.Status == "running" {
		g.Go(func() error {
			var ifs []goprox.ContainerInterface
			if err := x.get(ctx, x.ct.path("/interfaces"), &ifs); err != nil {
				return err
			}
			for _, i := range ifs {
				if p, err := netip.ParsePrefix(i.Inet); err == nil && i.Name != "lo" {
					ip = p.Addr().String()
					break
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return activities.ActionResult{}, err
	}
	out := map[string]string{"node": x.ct.Node, "vmid": strconv.Itoa(x.ct.VMID), "status": x.ct.Status, "ip": ip, "last_backup": last}
	return activities.ActionResult{Outputs: out,
		Summary: fmt.Sprintf("resolved %q to %s (%s, ip %s, last backup %s)", p.Asset, x.ct, x.ct.Status, orNone(ip), orNone(last))}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// backupVolume is one vzdump archive in a storage listing.
type backupVolume struct {
	VolID string `json:"volid"`
	VMID  uint64 `json:"vmid"`
	CTime int64  `json:"ctime"`
	Notes string `json:"notes"`
}

// backups lists the container's archives on storage sid.
func (x *call) backups(ctx context.Context, sid string) ([]backupVolume, error) {
	var list []backupVolume
	p := fmt.Sprintf("/nodes/%s/storage/%s/content?content=backup&vmid=%d", x.ct.Node, sid, x.ct.VMID)
	if err := x.get(ctx, p, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// backupStorages lists the node's backup-capable storages.
func (x *call) backupStorages(ctx context.Context) ([]string, error) {
	var storages []struct {
		Storage string `json:"storage"`
	}
	if err := x.get(ctx, fmt.Sprintf("/nodes/%s/storage?content=backup", x.ct.Node), &storages); err != nil {
		return nil, err
	}
	out := make([]string, len(storages))
	for i, s := range storages {
		out[i] = s.Storage
	}
	return out, nil
}

// lastBackupOn returns the newest non-forensic backup of the container on
// the given storages, listed together.
func (x *call) lastBackupOn(ctx context.Context, storages []string) (string, error) {
	lists := make([][]backupVolume, len(storages))
	var g errgroup.Group
	for i, sid := range storages {
		g.Go(func() (err error) { lists[i], err = x.backups(ctx, sid); return err })
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	var best backupVolume
	for _, list := range lists {
		for _, v := range list {
			if strings.HasPrefix(v.Notes, forensicNotesPrefix) {
				continue
			}
			if v.CTime > best.CTime || v.CTime == best.CTime && v.VolID > best.VolID {
				best = v
			}
		}
	}
	return best.VolID, nil
}
