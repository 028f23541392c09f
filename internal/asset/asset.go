// Package asset indexes the operator's inventory of assets (LXC containers
// on Proxmox nodes) by the names they are known under: container name,
// hostname, alias, Proxmox VMID, tag and IP address. The intake's inventory
// and the pve.* actions resolve assets through the same [Index].
package asset

import (
	"net/netip"
	"strconv"
	"strings"
)

// Asset is one canonical asset: an LXC container on a Proxmox node.
type Asset struct {
	// Name is the canonical container name (the incident's asset).
	Name string
	// Node is the Proxmox node the container runs on.
	Node string
	// VMID is the Proxmox VMID (0: none).
	VMID int
	// Hostname is the container's host name, if it differs from Name.
	Hostname string
	// IPs are the container's addresses ("10.0.0.5" or "10.0.0.5/24").
	IPs []string
	// Aliases are other names detectors use: container ids, DNS names.
	Aliases []string
	// Tags are the asset's tags (Proxmox tags), for routing rules.
	Tags []string
}

// Index finds assets by name, VMID, tag or address. Every lookup returns
// all the assets a key names, in inventory order: none, one, or several
// (an ambiguous key, which the caller refuses or skips).
type Index struct {
	list  []Asset
	names map[string][]int // lower-cased name, hostname, alias
	ips   map[netip.Addr][]int
	vmids map[int][]int
	tags  map[string][]int // lower-cased tag
}

// NewIndex indexes assets; entries without a name are left out.
func NewIndex(assets []Asset) *Index {
	ix := &Index{
		names: make(map[string][]int),
		ips:   make(map[netip.Addr][]int),
		vmids: make(map[int][]int),
		tags:  make(map[string][]int),
	}
	for _, a := range assets {
		if a.Name == "" {
			continue
		}
		i := len(ix.list)
		ix.list = append(ix.list, a)
		for _, n := range append([]string{a.Name, a.Hostname}, a.Aliases...) {
			add(ix.names, strings.ToLower(strings.TrimSpace(n)), i)
		}
		for _, s := range a.IPs {
			if ip, err := netip.ParseAddr(strings.TrimSpace(stripPrefix(s))); err == nil {
				add(ix.ips, ip.Unmap(), i)
			}
		}
		if a.VMID > 0 {
			add(ix.vmids, a.VMID, i)
		}
		for _, t := range a.Tags {
			add(ix.tags, strings.ToLower(strings.TrimSpace(t)), i)
		}
	}
	return ix
}

// add records that key names asset i, once.
func add[K comparable](m map[K][]int, key K, i int) {
	var zero K
	if key == zero {
		return
	}
	if l := m[key]; len(l) > 0 && l[len(l)-1] == i {
		return
	}
	m[key] = append(m[key], i)
}

// Len returns the number of assets indexed.
func (ix *Index) Len() int { return len(ix.list) }

func (ix *Index) get(is []int) []Asset {
	out := make([]Asset, len(is))
	for k, i := range is {
		out[k] = ix.list[i]
	}
	return out
}

// ByName finds assets by name, hostname or alias, ignoring case.
func (ix *Index) ByName(name string) []Asset {
	return ix.get(ix.names[strings.ToLower(strings.TrimSpace(name))])
}

// ByVMID finds the asset with a VMID given as text ("121").
func (ix *Index) ByVMID(v string) []Asset {
	id, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || id <= 0 {
		return nil
	}
	return ix.get(ix.vmids[id])
}

// ByIP finds assets with an address ("10.0.0.5"; IPv4-mapped IPv6 matches
// its IPv4 form).
func (ix *Index) ByIP(v string) []Asset {
	ip, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil {
		return nil
	}
	return ix.get(ix.ips[ip.Unmap()])
}

// ByTag finds assets carrying a tag, ignoring case.
func (ix *Index) ByTag(tag string) []Asset {
	return ix.get(ix.tags[strings.ToLower(strings.TrimSpace(tag))])
}

// stripPrefix turns "10.0.0.5/24" (Proxmox interface notation) into the
// address.
func stripPrefix(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}
