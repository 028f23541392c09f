// Package inventory maps the many names detectors use for an asset
// (container name, hostname, alias, Proxmox VMID, IP address, container id)
// to one canonical asset: container name, node and VMID. The inventory is
// filled from a [Source] (the Proxmox cluster, in production), refreshed
// periodically and on a miss, rate limited.
package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iru-responder/responder/internal/asset"
	"github.com/iru-responder/responder/internal/intake/parse"
)

// Asset is one canonical asset: an LXC container on a Proxmox node.
type Asset = asset.Asset

// Source lists all assets (the API server's is built over the Proxmox
// cluster resources and container configuration).
type Source interface {
	Assets(ctx context.Context) ([]Asset, error)
}

// Match is the result of resolving an alert's asset hints.
type Match struct {
	// Asset is the canonical asset; when Mapped is false only Name is set,
	// to the raw name the detector used.
	Asset Asset
	// Mapped is false when no hint matched the inventory.
	Mapped bool
	// By is the hint that matched (Mapped), or the one whose value became
	// the raw name.
	By parse.AssetHint
}

// Unknown is the asset name of an alert that names no asset at all.
const Unknown = "unknown"

// maxRawName bounds an unmapped raw name (it becomes part of a workflow id).
const maxRawName = 200

// Options tune refreshing.
type Options struct {
	// RefreshEvery is the period of background refreshes in [Inventory.Run]
	// (default 5 minutes).
	RefreshEvery time.Duration
	// MissRefreshEvery is the shortest time between two refreshes caused by
	// a miss (default 30 s).
	MissRefreshEvery time.Duration
	// RefreshTimeout bounds one Source call (default 10 s).
	RefreshTimeout time.Duration
	// Log receives refresh failures (nil: discarded).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Inventory resolves asset hints. It is safe for concurrent use.
type Inventory struct {
	src  Source
	opts Options
	idx  atomic.Pointer[index]

	mu          sync.Mutex
	lastAttempt time.Time
	inflight    chan struct{} // closed when the running refresh ends
	lastErr     error
}

// index is the inventory's current asset index.
type index struct{ *asset.Index }

// New returns an empty inventory over src; call [Inventory.Refresh] or
// [Inventory.Run] to fill it. Resolve refreshes on a miss by itself.
func New(src Source, opts Options) *Inventory {
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = 5 * time.Minute
	}
	if opts.MissRefreshEvery <= 0 {
		opts.MissRefreshEvery = 30 * time.Second
	}
	if opts.RefreshTimeout <= 0 {
		opts.RefreshTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	inv := &Inventory{src: src, opts: opts}
	inv.idx.Store(build(nil))
	return inv
}

// Len returns the number of assets known.
func (inv *Inventory) Len() int { return inv.idx.Load().Len() }

// Refresh reloads the assets from the source now. Concurrent callers share
// one source call.
func (inv *Inventory) Refresh(ctx context.Context) error {
	inv.mu.Lock()
	inv.lastAttempt = inv.opts.Now()
	return inv.refreshLocked(ctx)
}

// refreshLocked is called with mu held and releases it.
func (inv *Inventory) refreshLocked(ctx context.Context) error {
	if ch := inv.inflight; ch != nil {
		inv.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("inventory: wait for refresh: %w", ctx.Err())
		}
		inv.mu.Lock()
		err := inv.lastErr
		inv.mu.Unlock()
		return err
	}
	ch := make(chan struct{})
	inv.inflight = ch
	inv.mu.Unlock()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inv.opts.RefreshTimeout)
	assets, err := inv.src.Assets(rctx)
	cancel()
	if err != nil {
		err = fmt.Errorf("inventory: list assets: %w", err)
		inv.opts.Log.Warn("inventory refresh failed", "err", err)
	} else {
		inv.idx.Store(build(assets))
	}
	inv.mu.Lock()
	inv.lastErr = err
	inv.inflight = nil
	close(ch)
	inv.mu.Unlock()
	return err
}

// Run refreshes at once and then every RefreshEvery until ctx ends.
func (inv *Inventory) Run(ctx context.Context) {
	t := time.NewTicker(inv.opts.RefreshEvery)
	defer t.Stop()
	for {
		_ = inv.Refresh(ctx) // logged; the old index stays in use
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Resolve maps hints (most specific first) to a canonical asset. On a miss
// it refreshes the inventory (at most once per MissRefreshEvery) and tries
// again; an asset still unknown is returned unmapped under its raw name.
func (inv *Inventory) Resolve(ctx context.Context, hints []parse.AssetHint) Match {
	if m, ok := inv.idx.Load().lookup(hints); ok {
		return m
	}
	if len(hints) > 0 && inv.missRefreshDue() {
		_ = inv.refreshLocked(ctx) // logged; fall through to unmapped
		if m, ok := inv.idx.Load().lookup(hints); ok {
			return m
		}
	}
	return unmapped(hints)
}

// missRefreshDue reports whether a miss may refresh now; when true, mu is
// held for refreshLocked.
func (inv *Inventory) missRefreshDue() bool {
	inv.mu.Lock()
	now := inv.opts.Now()
	if inv.inflight == nil && now.Sub(inv.lastAttempt) < inv.opts.MissRefreshEvery {
		inv.mu.Unlock()
		return false
	}
	if inv.inflight == nil {
		inv.lastAttempt = now
	}
	return true
}

func unmapped(hints []parse.AssetHint) Match {
	for _, h := range hints {
		if h.Kind == parse.HintNode {
			continue
		}
		name := h.Value
		if len(name) > maxRawName {
			name = name[:maxRawName]
			for len(name) > 0 && name[len(name)-1]&0xC0 == 0x80 {
				name = name[:len(name)-1]
			}
			name = strings.ToValidUTF8(name, "")
		}
		return Match{Asset: Asset{Name: name}, By: h}
	}
	return Match{Asset: Asset{Name: Unknown}}
}

func build(assets []Asset) *index { return &index{asset.NewIndex(assets)} }

func (ix *index) lookup(hints []parse.AssetHint) (Match, bool) {
	for _, h := range hints {
		if a := ix.find(h); a != nil {
			return Match{Asset: *a, Mapped: true, By: h}, true
		}
	}
	return Match{}, false
}

// find returns the one asset a hint names (nil: none, or ambiguous).
func (ix *index) find(h parse.AssetHint) *Asset {
	v := strings.TrimSpace(h.Value)
	switch h.Kind {
	case parse.HintNode:
		return nil // a node names many assets
	case parse.HintVMID:
		return one(ix.ByVMID(v))
	case parse.HintIP:
		return one(ix.ByIP(v))
	}
	if a := one(ix.ByName(v)); a != nil {
		return a
	}
	if a := one(ix.ByIP(v)); a != nil {
		return a
	}
	if h.Kind == parse.HintName {
		if a := one(ix.ByVMID(v)); a != nil {
			return a
		}
	}
	// A fully qualified name whose first label is a known name.
	if short, _, ok := strings.Cut(v, "."); ok && short != "" {
		if _, err := netip.ParseAddr(v); err != nil {
			return one(ix.ByName(short))
		}
	}
	return nil
}

// one returns the only asset of l (nil: none, or ambiguous).
func one(l []Asset) *Asset {
	if len(l) != 1 {
		return nil
	}
	return &l[0]
}
