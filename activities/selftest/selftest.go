// Package selftest implements the [activities.SelfTestProbe] activity: the
// worker's end-to-end health check.
package selftest

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/iru-responder/responder/activities"
	"github.com/iru-responder/responder/internal/version"
)

// Probe checks one dependency of the worker. It returns nil when the
// dependency is usable.
type Probe func(ctx context.Context) error

// Activities runs the self-test probe.
type Activities struct {
	// Probes are checked on every self-test, by name.
	Probes map[string]Probe
	// Order lists the probe names in the order they are reported.
	Order []string
}

// SelfTestProbe implements [activities.SelfTestProbe].
func (a *Activities) SelfTestProbe(ctx context.Context, in activities.SelfTestProbeInput) (activities.SelfTestProbeResult, error) {
	host, _ := os.Hostname()
	res := activities.SelfTestProbeResult{
		Nonce:   in.Nonce,
		Worker:  fmt.Sprintf("%d@%s", os.Getpid(), host),
		Version: version.String(),
	}
	for _, name := range a.Order {
		p, ok := a.Probes[name]
		if !ok {
			continue
		}
		c := activities.DependencyCheck{Name: name, OK: true}
		if err := p(ctx); err != nil {
			c.OK, c.Error = false, err.Error()
		}
		res.Checks = append(res.Checks, c)
	}
	res.Finished = time.Now().UTC()
	return res, nil
}
