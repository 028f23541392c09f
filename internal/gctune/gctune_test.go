package gctune

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	const limit = 900 << 20
	tests := []struct {
		name    string
		env     string // GOGC in the environment ("": unset)
		percent int    // the collector's GOGC before Apply
		limit   int64  // the soft memory limit before Apply (0: none)
		want    Setting
	}{
		{"no memory limit: unchanged", "", 100, 0, Setting{Percent: 100}},
		{"memory limit: raised", "", 100, limit, Setting{Percent: Percent, MemoryLimit: limit, Raised: true}},
		{"operator's GOGC kept", "150", 150, limit, Setting{Percent: 150, MemoryLimit: limit}},
		{"operator's GOGC=off kept", "off", -1, limit, Setting{Percent: -1, MemoryLimit: limit}},
		{"a higher GOGC set in code kept", "", 800, limit, Setting{Percent: 800, MemoryLimit: limit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restore(t)
			if tt.env != "" {
				t.Setenv("GOGC", tt.env)
			} else if v, ok := os.LookupEnv("GOGC"); ok {
				t.Setenv("GOGC", v) // restored after the test
				os.Unsetenv("GOGC")
			}
			debug.SetGCPercent(tt.percent)
			if tt.limit > 0 {
				debug.SetMemoryLimit(tt.limit)
			} else {
				debug.SetMemoryLimit(math.MaxInt64)
			}
			if got := Apply(); got != tt.want {
				t.Errorf("Apply() = %+v, want %+v", got, tt.want)
			}
			if got := Current(); got.Percent != tt.want.Percent || got.MemoryLimit != tt.want.MemoryLimit {
				t.Errorf("after Apply the runtime has %+v, want GOGC %d and limit %d", got, tt.want.Percent, tt.want.MemoryLimit)
			}
		})
	}
}

// restore puts the collector's setting back after the test.
func restore(t *testing.T) {
	t.Helper()
	percent := Current().Percent
	limit := debug.SetMemoryLimit(-1) // -1 reads the limit without changing it
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func TestSettingString(t *testing.T) {
	tests := []struct {
		s    Setting
		want string
	}{
		{Setting{Percent: 100}, "GOGC 100 (as set), no memory limit"},
		{Setting{Percent: Percent, MemoryLimit: 900 << 20, Raised: true}, "GOGC 400 (raised under the limit), memory limit 900 MiB"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
}
