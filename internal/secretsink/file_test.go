package secretsink

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iru-responder/responder/activities"
)

func TestFileSink(t *testing.T) {
	dir := t.TempDir()
	s := File{Dir: dir}
	ref, err := s.StoreSecret(context.Background(), activities.SecretItem{Name: "keycloak/iru/iru-api", Value: []byte("v1-secret")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ref, "v1-secret") {
		t.Fatalf("reference leaks the secret: %s", ref)
	}
	again, err := s.StoreSecret(context.Background(), activities.SecretItem{Name: "keycloak/iru/iru-api", Value: []byte("v1-secret")})
	if err != nil || again != ref {
		t.Fatalf("not idempotent: %s vs %s (%v)", again, ref, err)
	}
	v2, _ := s.StoreSecret(context.Background(), activities.SecretItem{Name: "keycloak/iru/iru-api", Value: []byte("v2-secret")})
	if v2 == ref {
		t.Fatal("a new version overwrote the old one")
	}
	got, err := s.Read(ref)
	if err != nil || string(got) != "v1-secret" {
		t.Fatalf("read = %q, %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(ref, "secret://"))))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", fi.Mode(), err)
	}
	for _, bad := range []activities.SecretItem{{Name: "../x", Value: []byte("a")}, {Name: "x"}, {Value: []byte("a")}} {
		if _, err := s.StoreSecret(context.Background(), bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if _, err := s.Read("secret://../../etc/passwd"); err == nil {
		t.Error("read outside the folder")
	}
}
