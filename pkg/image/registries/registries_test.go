package registries

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image/reference"
)

const conf = `
unqualified-search-registries = ["docker.io", "quay.io"]

[[registry]]
prefix = "registry.k8s.io"
location = "127.0.0.1:5000/registry.k8s.io"
insecure = true

[[registry]]
prefix = "example.com/team"
location = "mirror.local:5000/team"

[[registry]]
prefix = "example.com/team/special"
location = "special.local/x"

[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "cache.local:5000"
insecure = true
[[registry.mirror]]
location = "digests.local"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "corp-cache.local"

[[registry]]
prefix = "evil.example"
blocked = true

[[registry]]
prefix = "quay.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "quay-mirror.local"
`

const dg = "sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf"

func TestEndpoints(t *testing.T) {
	c, err := Parse(conf)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		image string
		want  []string // ref, with " insecure" and " mirror" marks
	}{
		{"registry.k8s.io/pause:3.9", []string{"127.0.0.1:5000/registry.k8s.io/pause:3.9 insecure"}},
		{"registry.k8s.io/e2e-test-images/busybox:1.29-2", []string{"127.0.0.1:5000/registry.k8s.io/e2e-test-images/busybox:1.29-2 insecure"}},
		{"example.com/team/app:v1", []string{"mirror.local:5000/team/app:v1"}},
		{"example.com/team/special/app:v1", []string{"special.local/x/app:v1"}},
		{"example.com/teammate/app:v1", []string{"example.com/teammate/app:v1"}},
		{"busybox", []string{"cache.local:5000/library/busybox:latest insecure mirror", "docker.io/library/busybox:latest"}},
		{"busybox@" + dg, []string{"cache.local:5000/library/busybox@" + dg + " insecure mirror", "digests.local/library/busybox@" + dg + " mirror", "docker.io/library/busybox@" + dg}},
		{"a.corp.example/x:1", []string{"corp-cache.local/x:1 mirror", "a.corp.example/x:1"}},
		{"quay.io/x/y:1", []string{"quay.io/x/y:1"}},
		{"quay.io/x/y@" + dg, []string{"quay-mirror.local/x/y@" + dg + " mirror", "quay.io/x/y@" + dg}},
		{"gcr.io/unlisted/img:1", []string{"gcr.io/unlisted/img:1"}},
	}
	for _, tt := range tests {
		n, err := reference.Parse(tt.image)
		if err != nil {
			t.Fatal(err)
		}
		eps, err := c.Endpoints(n)
		if err != nil {
			t.Errorf("%s: %v", tt.image, err)
			continue
		}
		var got []string
		for _, e := range eps {
			s := e.Ref.String()
			if e.Insecure {
				s += " insecure"
			}
			if e.Mirror {
				s += " mirror"
			}
			got = append(got, s)
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", tt.image, got, tt.want)
		}
	}
	n, _ := reference.Parse("evil.example/x:1")
	if _, err := c.Endpoints(n); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("blocked registry: %v", err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "unqualified-search-registries") {
		t.Errorf("warnings %v", c.Warnings)
	}
}

func TestParseRefusals(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"v1 format", "[registries.search]\nregistries = ['docker.io']", "version 1 format"},
		{"no prefix nor location", "[[registry]]\ninsecure = true", "neither prefix nor location"},
		{"scheme in location", "[[registry]]\nprefix = \"a.io\"\nlocation = \"https://b.io\"", "must not have a scheme"},
		{"bad wildcard", "[[registry]]\nprefix = \"a.*.io\"", "first label"},
		{"wildcard with location", "[[registry]]\nprefix = \"*.a.io\"\nlocation = \"b.io\"", "cannot have a location"},
		{"duplicate prefix", "[[registry]]\nprefix = \"a.io\"\n[[registry]]\nprefix = \"a.io\"", "twice"},
		{"bad pull-from-mirror", "[[registry]]\nprefix = \"a.io\"\npull-from-mirror = \"some\"", "pull-from-mirror"},
		{"mirror without location", "[[registry]]\nprefix = \"a.io\"\n[[registry.mirror]]\ninsecure = true", "no location"},
		{"wrong type", "[[registry]]\nprefix = 1", "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.conf"))
	if err != nil || len(c.Registries) != 0 {
		t.Fatalf("missing file: %+v, %v", c, err)
	}
	p := filepath.Join(t.TempDir(), "registries.conf")
	os.WriteFile(p, []byte("[[registry]]\nprefix = 1"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("bad file: %v", err)
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	c, err := Parse("credential-helpers = [\"x\"]\nsomething-new = 1\n[aliases]\n\"foo\" = \"quay.io/foo\"")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "something-new") {
		t.Fatalf("warnings %v", c.Warnings)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(conf)
	f.Add("[[registry]]\nprefix = \"*.a.io\"")
	f.Add("[[registry]]\nlocation = \"b\"\n[[registry.mirror]]\nlocation = \"c:1/d\"")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		for _, img := range []string{"busybox", "a.io/b/c:1", "x.a.io/y@" + dg} {
			n, _ := reference.Parse(img)
			eps, err := c.Endpoints(n)
			if err == nil && len(eps) == 0 {
				t.Fatalf("%s: no endpoints and no error", img)
			}
		}
	})
}
