package config

import (
	"testing"
	"time"
)

type defaultsInner struct {
	Storage string `env:"T_STORAGE" envDefault:"local"`
}

type defaultsCfg struct {
	URL     string        `env:"T_URL"`
	Poll    time.Duration `env:"T_POLL" envDefault:"500ms"`
	Tag     string        `env:"T_TAG" envDefault:"drill"`
	Enabled bool          `env:"T_ENABLED" envDefault:"true"`
	Inner   defaultsInner
}

func TestFillDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   defaultsCfg
		want defaultsCfg
	}{
		{"all zero", defaultsCfg{}, defaultsCfg{Poll: 500 * time.Millisecond, Tag: "drill", Enabled: true, Inner: defaultsInner{Storage: "local"}}},
		{"set fields kept", defaultsCfg{URL: "https://x", Poll: time.Second, Tag: "t", Inner: defaultsInner{Storage: "nfs"}},
			defaultsCfg{URL: "https://x", Poll: time.Second, Tag: "t", Enabled: true, Inner: defaultsInner{Storage: "nfs"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			if err := FillDefaults(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("FillDefaults = %+v, want %+v", got, tt.want)
			}
		})
	}
	if err := FillDefaults(defaultsCfg{}); err == nil {
		t.Error("FillDefaults accepted a struct value, not a pointer")
	}
}
