package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/iru-responder/responder/internal/testenv"
)

// composeFile is the part of a compose file the checks read.
type composeFile struct {
	Services map[string]struct {
		Image       string                            `yaml:"image"`
		Build       *struct{ Context, Target string } `yaml:"build"`
		User        string                            `yaml:"user"`
		ReadOnly    bool                              `yaml:"read_only"`
		CapDrop     []string                          `yaml:"cap_drop"`
		SecurityOpt []string                          `yaml:"security_opt"`
		Ports       []string                          `yaml:"ports"`
		Networks    []string                          `yaml:"networks"`
		Volumes     []string                          `yaml:"volumes"`
		Secrets     []string                          `yaml:"secrets"`
		Environment map[string]string                 `yaml:"environment"`
		Deploy      struct {
			Resources struct {
				Limits struct{ CPUs, Memory string } `yaml:"limits"`
			} `yaml:"resources"`
		} `yaml:"deploy"`
	} `yaml:"services"`
	Networks map[string]struct {
		Internal bool `yaml:"internal"`
	} `yaml:"networks"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

// TestComposeFile checks docker-compose.yml itself, since no Docker engine
// runs here: it parses; every image is pinned; every service carries the
// hardening the seed asks for; every file it references exists (secrets:
// written by scripts/compose-secrets.sh); only the documented ports are
// published; the internal network has no way out.
func TestComposeFile(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	if len(cf.Services) < 9 {
		t.Fatalf("only %d services", len(cf.Services))
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	readmeAll, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The ports must be documented in the README's compose section.
	_, readme, ok := strings.Cut(string(readmeAll), "## Deploying with docker compose")
	if !ok {
		t.Fatal("README has no \"Deploying with docker compose\" section")
	}
	readme, _, _ = strings.Cut(readme, "\n## ")
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:[0-9][0-9A-Za-z.+_-]*$`)
	wantPublished := map[string]bool{"api": true, "temporal-ui": true, "codec": true, "keycloak": true}
	for name, s := range cf.Services {
		t.Run(name, func(t *testing.T) {
			switch {
			case s.Build != nil:
				if !strings.Contains(string(dockerfile), " AS "+s.Build.Target+"\n") {
					t.Errorf("build target %q is not a stage of the Dockerfile", s.Build.Target)
				}
			case !pinned.MatchString(s.Image):
				t.Errorf("image %q is not pinned to a version", s.Image)
			}
			if !s.ReadOnly {
				t.Error("root filesystem is not read-only")
			}
			if !slices.Contains(s.CapDrop, "ALL") {
				t.Error("capabilities not dropped (cap_drop: [ALL])")
			}
			if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Error("no-new-privileges is not set")
			}
			if s.User == "" || s.User == "root" || strings.HasPrefix(s.User, "0:") || s.User == "0" {
				t.Errorf("runs as root (user %q)", s.User)
			}
			if s.Deploy.Resources.Limits.Memory == "" || s.Deploy.Resources.Limits.CPUs == "" {
				t.Error("no CPU and memory limits")
			}
			if len(s.Ports) > 0 != wantPublished[name] {
				t.Errorf("publishes %v; only %v may publish ports", s.Ports, wantPublished)
			}
			for _, p := range s.Ports {
				host := strings.Split(p, ":")
				hostPort := host[len(host)-2]
				if !strings.Contains(readme, "`"+hostPort+"`") && !strings.Contains(readme, ":"+hostPort+"`") {
					t.Errorf("published port %s is not in the README", hostPort)
				}
				if name != "api" && !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("%s publishes %s beyond loopback", name, p)
				}
			}
			if len(s.Ports) > 0 && !slices.Contains(s.Networks, "edge") {
				t.Error("publishes ports but is not on the edge network")
			}
			if len(s.Networks) == 0 {
				t.Error("on no network")
			}
			for _, v := range s.Volumes {
				src := strings.Split(v, ":")[0]
				if strings.HasPrefix(src, "./") {
					if _, err := os.Stat(filepath.Join(root, src)); err != nil {
						t.Errorf("volume source %s: %v", src, err)
					}
				}
			}
			for _, sec := range s.Secrets {
				if _, ok := cf.Secrets[sec]; !ok {
					t.Errorf("secret %s is not declared", sec)
				}
			}
			for k, v := range s.Environment {
				if strings.Contains(strings.ToUpper(k), "PASSWORD") && !strings.HasSuffix(k, "_FILE") && !strings.HasPrefix(v, "${") {
					t.Errorf("%s holds a password literally", k)
				}
			}
		})
	}
	if !cf.Networks["core"].Internal {
		t.Error("the core network is not internal")
	}
	// Every secret file is written by the secrets script.
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "compose-secrets.sh"), "--lab")
	cmd.Env = append(os.Environ(), "IRU_SECRETS_OUT="+out, "IRU_ENV_OUT="+filepath.Join(out, ".env"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compose-secrets.sh: %v\n%s", err, b)
	}
	for name, sec := range cf.Secrets {
		f := filepath.Join(out, filepath.Base(sec.File))
		fi, err := os.Stat(f)
		if err != nil {
			t.Errorf("secret %s: compose-secrets.sh does not write %s", name, filepath.Base(sec.File))
			continue
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("secret %s is readable by others (%v)", name, fi.Mode())
		}
	}
}
