package cluster

import (
	"slices"
	"strings"
	"testing"

	"github.com/iru-responder/responder/internal/gctune"
)

// TestServerEnvMetrics checks that the server is told to serve its
// Prometheus metrics exactly when Options.MetricsAddr says where.
func TestServerEnvMetrics(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		want       []string
	}{
		{"off", "", nil},
		{"on", "127.0.0.1:19090", []string{"PROMETHEUS_ENDPOINT=127.0.0.1:19090"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{opts: Options{MetricsAddr: tc.addr}, ports: map[string]int{}}
			var got []string
			for _, kv := range c.serverEnv() {
				if strings.HasPrefix(kv, "PROMETHEUS_ENDPOINT=") {
					got = append(got, kv)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("PROMETHEUS_ENDPOINT in the server's environment: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestServerEnvCollector checks that the server runs with the platform's
// collector setting (GOGC under a memory limit, gctune.ServerEnv), each
// variable once.
func TestServerEnvCollector(t *testing.T) {
	c := &Cluster{ports: map[string]int{}}
	env := c.serverEnv()
	for _, want := range gctune.ServerEnv() {
		name, _, _ := strings.Cut(want, "=")
		var got []string
		for _, kv := range env {
			if strings.HasPrefix(kv, name+"=") {
				got = append(got, kv)
			}
		}
		if !slices.Equal(got, []string{want}) {
			t.Errorf("%s in the server's environment: %q, want [%s]", name, got, want)
		}
	}
}
