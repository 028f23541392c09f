package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/iru-responder/responder/activities"
)

// Inventory gives the address of an asset as the inventory (Proxmox VE)
// records it; the probe's default target is derived from it.
type Inventory interface {
	// ResolvedAddr returns the address of the container the intake
	// resolved the asset to, once it has checked that the container still
	// carries the asset's name; a ref that does not locate the asset is an
	// error, never another container's address.
	ResolvedAddr(ctx context.Context, ref activities.AssetRef) (netip.Addr, error)
	// AssetAddr looks an asset up by name (vmid, hostname, tag: or
	// address) and returns its address.
	AssetAddr(ctx context.Context, asset string) (netip.Addr, error)
}

// RefusedError is a probe target the address policy refuses: link-local,
// loopback, unspecified or multicast addresses and the platform's own
// listen addresses, unless explicitly allowed. It is checked on the target
// and again on every address the dialer connects to (a host name that
// resolves to a refused address is refused too).
type RefusedError struct {
	Addr   netip.AddrPort
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("probe target %s refused: %s (allow it explicitly with IRU_PROBE_TARGETS or IRU_PROBE_ALLOW_NETS)", e.Addr, e.Reason)
}

// policy decides which addresses a probe may connect to.
type policy struct {
	// exact are the ip:port of explicitly configured targets with an
	// address literal: always allowed.
	exact []netip.AddrPort
	// nets are explicitly allowed networks (loopback, link-local …).
	nets []netip.Prefix
	// platform are the platform's own listen addresses (host:port).
	platform []string
	// localAddrs lists the host's interface addresses (for wildcard listen
	// addresses); tests replace it.
	localAddrs func() []netip.Addr
	// lookup resolves platform host names; tests replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

func interfaceAddrs() []netip.Addr {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// check returns a *RefusedError when the policy refuses ap.
func (p *policy) check(ctx context.Context, ap netip.AddrPort) error {
	ip := ap.Addr().Unmap()
	ap = netip.AddrPortFrom(ip, ap.Port())
	if slices.Contains(p.exact, ap) {
		return nil
	}
	if own := p.own(ctx, ap); own != "" {
		return &RefusedError{Addr: ap, Reason: "it is the platform's own listen address " + own}
	}
	var class string
	switch {
	case ip.IsLoopback():
		class = "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		class = "link-local (cloud metadata and neighbours)"
	case ip.IsUnspecified():
		class = "unspecified (this host)"
	case ip.IsMulticast():
		class = "multicast"
	default:
		return nil
	}
	if slices.ContainsFunc(p.nets, func(n netip.Prefix) bool { return n.Contains(ip) }) {
		return nil
	}
	return &RefusedError{Addr: ap, Reason: "the address is " + class}
}

// own returns the platform listen address ap is, or "".
func (p *policy) own(ctx context.Context, ap netip.AddrPort) string {
	for _, l := range p.platform {
		host, port, err := net.SplitHostPort(l)
		if err != nil || port != strconv.Itoa(int(ap.Port())) {
			continue
		}
		if host == "" {
			host = "0.0.0.0"
		}
		addrs := []netip.Addr{}
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = append(addrs, a.Unmap())
		} else if p.lookup != nil {
			rs, _ := p.lookup(ctx, host)
			for _, r := range rs {
				addrs = append(addrs, r.Unmap())
			}
		}
		for _, a := range addrs {
			if a == ap.Addr() {
				return l
			}
			if a.IsUnspecified() && (ap.Addr().IsLoopback() || ap.Addr().IsUnspecified() || slices.Contains(p.localAddrs(), ap.Addr())) {
				return l
			}
		}
	}
	return ""
}

// control is the dialer's ControlContext: the last check, on the address
// actually being connected to, after name resolution.
func (p *policy) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Reason: fmt.Sprintf("unparsable dial address %q", address)}
	}
	return p.check(ctx, ap)
}

// checkLiteral checks a target whose host is an address literal before any
// connection (a host name is checked when it is dialled).
func (p *policy) checkLiteral(ctx context.Context, t target) error {
	host, port := t.hostPort()
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return nil
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return nil
	}
	return p.check(ctx, netip.AddrPortFrom(ip, uint16(n)))
}

// hostPort returns the target's host and port (the scheme's default port
// for a URL without one).
func (t target) hostPort() (string, string) {
	if t.url == nil {
		h, p, _ := net.SplitHostPort(t.addr)
		return h, p
	}
	port := t.url.Port()
	if port == "" {
		port = "80"
		if t.url.Scheme == "https" {
			port = "443"
		}
	}
	return t.url.Hostname(), port
}

// key is the canonical form targets are compared in.
func (t target) key() string {
	if t.url != nil {
		u := *t.url
		u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		return u.String()
	}
	return "tcp://" + strings.ToLower(t.addr)
}

// allowList is the parsed IRU_PROBE_TARGETS.
type allowList struct {
	byAsset  map[string]target
	explicit []target
}

func parseAllowList(entries []string) (allowList, error) {
	l := allowList{byAsset: map[string]target{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		asset, raw, ok := strings.Cut(e, "=")
		if !ok || strings.Contains(asset, "/") {
			asset, raw = "", e
		}
		t, err := parseTarget(strings.TrimPrefix(raw, "tcp://"))
		if err != nil {
			return allowList{}, fmt.Errorf("IRU_PROBE_TARGETS: %w", err)
		}
		if asset != "" {
			l.byAsset[strings.ToLower(strings.TrimSpace(asset))] = t
		}
		l.explicit = append(l.explicit, t)
	}
	return l, nil
}

func (l allowList) allows(t target) bool {
	return slices.ContainsFunc(l.explicit, func(a target) bool { return a.key() == t.key() })
}

// exactAddrs returns the ip:port of the listed targets that name an address.
func (l allowList) exactAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, t := range l.explicit {
		host, port := t.hostPort()
		ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
		n, perr := strconv.Atoi(port)
		if err == nil && perr == nil {
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(n)))
		}
	}
	return out
}

// resolveTarget picks the probe's target: a `target` parameter only when it
// is on the allow-list; otherwise the asset's entry of the allow-list, or
// its inventory address with the configured scheme, port and path. The
// address of the incident's asset comes from the container the intake
// resolved ([activities.ActionInput.Resolved]); an asset without one (a
// manual run, another asset named by the step) is looked up by name. The
// second result says where the target came from.
func (a *Activities) resolveTarget(ctx context.Context, in activities.ActionInput, p activities.NetHealthProbeParams) (target, string, error) {
	if raw := p.Target; raw != "" {
		t, err := parseTarget(raw)
		if err != nil {
			return target{}, "", activities.NewFinalError(activities.ErrTypeBadParams, activities.NetHealthProbe+": "+err.Error(), nil)
		}
		if !a.allow.allows(t) {
			return target{}, "", activities.NewFinalError(activities.ErrTypePrecondition, fmt.Sprintf(
				"%s: target %s is not on the allow-list (IRU_PROBE_TARGETS): a probe target comes from the asset's inventory address or the allow-list", activities.NetHealthProbe, t), nil)
		}
		return t, "allow-list", nil
	}
	asset := cmp.Or(p.Asset, in.Asset)
	if asset == "" {
		return target{}, "", activities.NewFinalError(activities.ErrTypeBadParams, activities.NetHealthProbe+": no asset to probe (parameter asset)", nil)
	}
	if t, ok := a.allow.byAsset[strings.ToLower(asset)]; ok {
		return t, "allow-list entry of " + asset, nil
	}
	if a.inv == nil {
		return target{}, "", activities.NewFinalError(activities.ErrTypePrecondition, activities.NetHealthProbe+": no inventory to find the address of "+asset, nil)
	}
	var ip netip.Addr
	var err error
	var from string
	if r := in.Resolved; r != nil && strings.EqualFold(r.Name, asset) {
		ip, err = a.inv.ResolvedAddr(ctx, *r)
		from = fmt.Sprintf("inventory address of %s (CT %d on %s, as the intake resolved it)", asset, r.VMID, r.Node)
	} else {
		ip, err = a.inv.AssetAddr(ctx, asset)
		from = fmt.Sprintf("inventory address of %s (looked up by name: %s)", asset, unresolvedWhy(in.Resolved))
	}
	if err != nil {
		return target{}, "", err
	}
	hp := net.JoinHostPort(ip.String(), strconv.Itoa(a.cfg.Port))
	if a.cfg.Scheme == "tcp" {
		return target{addr: hp}, from, nil
	}
	return target{url: &url.URL{Scheme: a.cfg.Scheme, Host: hp, Path: a.cfg.Path}}, from, nil
}

// unresolvedWhy says why an asset's address is looked up by name.
func unresolvedWhy(r *activities.AssetRef) string {
	if r == nil {
		return "the run carries no asset resolved by the intake"
	}
	return fmt.Sprintf("the intake resolved %s, not this asset", r.Name)
}

// refused returns the *RefusedError in err, if any.
func refused(err error) (*RefusedError, bool) {
	var r *RefusedError
	ok := errors.As(err, &r)
	return r, ok
}
