package auth

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func authOK(a *Authenticator, name, key string) bool {
	r := httptest.NewRequest("POST", "/v1/alerts/"+name, nil)
	r.Header.Set(HeaderKey, key)
	_, err := a.Authenticate(r, name, nil)
	return err == nil
}

func TestSetDetectors(t *testing.T) {
	a, err := New([]Detector{{Name: "am", Format: "alertmanager", APIKeys: []APIKey{{ID: "k1", SHA256: HashKey("k1", "key-1")}}}}, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	next := []Detector{
		{Name: "am", Format: "alertmanager", APIKeys: []APIKey{{ID: "k2", SHA256: HashKey("k2", "key-2")}}},
		{Name: "falco", Format: "falco", APIKeys: []APIKey{{ID: "f1", SHA256: HashKey("f1", "falco-1")}}},
	}
	tests := []struct {
		name      string
		set       []Detector
		wantErr   string
		accept    [][2]string // detector, key
		refuse    [][2]string
		detectors string
	}{
		{name: "swap", set: next, accept: [][2]string{{"am", "key-2"}, {"falco", "falco-1"}},
			refuse: [][2]string{{"am", "key-1"}}, detectors: "am,falco"},
		{name: "invalid set changes nothing", set: []Detector{{Name: "am", Format: "alertmanager"}}, wantErr: "no api_keys",
			accept: [][2]string{{"am", "key-2"}, {"falco", "falco-1"}}, detectors: "am,falco"},
		{name: "duplicate changes nothing", set: append(next, next[0]), wantErr: "configured twice",
			accept: [][2]string{{"am", "key-2"}}, detectors: "am,falco"},
		{name: "shrink", set: next[1:], accept: [][2]string{{"falco", "falco-1"}}, refuse: [][2]string{{"am", "key-2"}}, detectors: "falco"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.SetDetectors(tt.set)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("SetDetectors error %v, want %q", err, tt.wantErr)
			}
			for _, c := range tt.accept {
				if !authOK(a, c[0], c[1]) {
					t.Errorf("%s with %s refused", c[0], c[1])
				}
			}
			for _, c := range tt.refuse {
				if authOK(a, c[0], c[1]) {
					t.Errorf("%s with %s accepted", c[0], c[1])
				}
			}
			if got := strings.Join(a.Detectors(), ","); got != tt.detectors {
				t.Errorf("Detectors() = %s, want %s", got, tt.detectors)
			}
		})
	}
}

func TestDetectorsAreCopied(t *testing.T) {
	ds := []Detector{{Name: "am", Format: "alertmanager", APIKeys: []APIKey{{ID: "k1", SHA256: HashKey("k1", "key-1")}}}}
	a, err := New(ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds[0].APIKeys[0].SHA256 = HashKey("k1", "attacker")
	got, _ := a.Detector("am")
	got.APIKeys[0].NotAfter = time.Unix(1, 0)
	if !authOK(a, "am", "key-1") || authOK(a, "am", "attacker") {
		t.Fatal("changing the caller's or the returned slices changed the authenticator")
	}
}

// TestAuthenticateDuringSetDetectors authenticates from many goroutines
// while the detectors are swapped back and forth (run with -race). The key
// "both" is valid in both sets, "a-only" in one: every attempt must see one
// whole set.
func TestAuthenticateDuringSetDetectors(t *testing.T) {
	setA := []Detector{{Name: "d", Format: "generic", APIKeys: []APIKey{
		{ID: "both", SHA256: HashKey("both", "both-key")}, {ID: "a", SHA256: HashKey("a", "a-only")}}}}
	setB := []Detector{{Name: "d", Format: "generic", APIKeys: []APIKey{{ID: "both", SHA256: HashKey("both", "both-key")}}},
		{Name: "e", Format: "generic", APIKeys: []APIKey{{ID: "e", SHA256: HashKey("e", "e-key")}}}}
	a, err := New(setA, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		failures atomic.Int64
		swaps    atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if !authOK(a, "d", "both-key") {
					failures.Add(1)
				}
				authOK(a, "d", "a-only")
				authOK(a, "e", "e-key")
				_ = a.Detectors()
				if d, ok := a.Detector("d"); !ok || len(d.APIKeys) == 0 {
					failures.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			set := setA
			if i%2 == 1 {
				set = setB
			}
			if err := a.SetDetectors(set); err != nil {
				t.Error(err)
			}
			swaps.Add(1)
		}
		stop.Store(true)
	})
	wg.Wait()
	if failures.Load() != 0 || swaps.Load() != 500 {
		t.Fatalf("%d failed authentications of a key valid in both sets over %d swaps", failures.Load(), swaps.Load())
	}
}

func TestAPIKeyEncoding(t *testing.T) {
	tests := []struct {
		name string
		key  APIKey
		want []string
		not  []string
	}{
		{name: "minimal", key: APIKey{ID: "k", SHA256: "ab"}, want: []string{"id", "sha256"}, not: []string{"not_before", "not_after", "secret_ref"}},
		{name: "full", key: APIKey{ID: "k", SHA256: "ab", NotBefore: now, NotAfter: now.Add(time.Hour), SecretRef: "secret://intake/x/k/01"},
			want: []string{"not_before", "not_after", "secret_ref"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y, err := yaml.Marshal(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			j, err := json.Marshal(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			for _, enc := range []string{string(y), string(j)} {
				for _, w := range tt.want {
					if !strings.Contains(enc, w) {
						t.Errorf("%q lacks %s", enc, w)
					}
				}
				for _, n := range tt.not {
					if strings.Contains(enc, n) {
						t.Errorf("%q has %s", enc, n)
					}
				}
			}
			var fromY, fromJ APIKey
			if err := yaml.Unmarshal(y, &fromY); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(j, &fromJ); err != nil {
				t.Fatal(err)
			}
			if !fromY.NotAfter.Equal(tt.key.NotAfter) || fromY.SecretRef != tt.key.SecretRef || fromJ.SecretRef != tt.key.SecretRef || !fromJ.NotBefore.Equal(tt.key.NotBefore) {
				t.Errorf("round trip: yaml %+v json %+v, want %+v", fromY, fromJ, tt.key)
			}
		})
	}
}
