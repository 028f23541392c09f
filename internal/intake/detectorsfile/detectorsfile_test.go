package detectorsfile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iru-responder/responder/internal/intake/auth"
)

func apiKey(id, key string) auth.APIKey { return auth.APIKey{ID: id, SHA256: auth.HashKey(id, key)} }

func fileDetectors() []auth.Detector {
	return []auth.Detector{
		{Name: "generic", Format: "generic", APIKeys: []auth.APIKey{apiKey("g1", "generic-key-1")}},
		{Name: "falco", Format: "falco", APIKeys: []auth.APIKey{apiKey("f1", "falco-key-1")}},
	}
}

func TestDetectorsFileRoundTrip(t *testing.T) {
	for _, name := range []string{"detectors.yaml", "detectors.json"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			in := File{Detectors: fileDetectors()}
			in.Detectors[0].APIKeys[0].NotAfter = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			in.Detectors[0].APIKeys[0].SecretRef = "secret://intake/generic/g1/abcd"
			if err := Write(path, in); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
			out, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			k := out.Detectors[0].APIKeys[0]
			if out.Version != Version || len(out.Detectors) != 2 || !k.NotAfter.Equal(in.Detectors[0].APIKeys[0].NotAfter) ||
				k.SecretRef != "secret://intake/generic/g1/abcd" || k.SHA256 != auth.HashKey("g1", "generic-key-1") {
				t.Fatalf("read back %+v", out)
			}
		})
	}
}

func TestLoadDetectorsFileRefuses(t *testing.T) {
	good := fmt.Sprintf("version: 1\ndetectors:\n  - name: generic\n    format: generic\n    api_keys:\n      - id: g1\n        sha256: %s\n", auth.HashKey("g1", "k"))
	tests := []struct {
		name, file, content, want string
	}{
		{"unknown key", "d.yaml", good + "extra: 1\n", "extra"},
		{"unknown json key", "d.json", `{"version":1,"detectors":[],"x":1}`, "unknown field"},
		{"empty", "d.yaml", "version: 1\ndetectors: []\n", "no detectors"},
		{"bad hash", "d.yaml", strings.Replace(good, auth.HashKey("g1", "k"), "abc", 1), "64 hex"},
		{"future version", "d.yaml", strings.Replace(good, "version: 1", "version: 2", 1), "version 2"},
		{"not yaml", "d.yaml", "{{{", "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "d.yaml")
	os.WriteFile(p, []byte(good), 0o600)
	if _, err := Load(p); err != nil {
		t.Fatalf("good file refused: %v", err)
	}
	if err := Write(p, File{}); err == nil {
		t.Fatal("wrote an empty detectors file")
	}
}

// TestUpdateDetectorsFileLocks adds detectors from many goroutines at once:
// none is lost.
func TestUpdateDetectorsFileLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detectors.yaml")
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("d%02d", i)
			err := Update(context.Background(), path, func(f *File) (bool, error) {
				f.Detectors = append(f.Detectors, auth.Detector{Name: name, Format: "generic", APIKeys: []auth.APIKey{apiKey("k", name)}})
				return true, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Detectors) != n {
		t.Fatalf("%d detectors after %d concurrent additions", len(f.Detectors), n)
	}
	// An unchanged update does not rewrite the file.
	before, _ := os.Stat(path)
	if err := Update(context.Background(), path, func(*File) (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Fatal("an update without a change rewrote the file")
	}
	// A lock that cannot be had ends with the context.
	unlock, err := lockFile(context.Background(), path+".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := Update(ctx, path, func(*File) (bool, error) { return true, nil }); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("update while locked: %v", err)
	}
}
