package catalog

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// buildNodeE2E makes the node e2e set with the real helpers, and nnp
// standing in for agnhost's bytes (the tests look at the layout only).
func buildNodeE2E(t *testing.T) map[string]v1.Image {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/curl", "/bin/nc.openbsd"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s (hack/install-deps.sh test installs it)", p)
		}
	}
	dir := t.TempDir()
	// A stand-in of agnhost's source directory: porter's TLS pair.
	source := filepath.Join(dir, "agnhost")
	os.MkdirAll(filepath.Join(source, "porter"), 0o755)
	os.WriteFile(filepath.Join(source, "porter", "localhost.crt"), []byte("cert"), 0o644)
	os.WriteFile(filepath.Join(source, "porter", "localhost.key"), []byte("key"), 0o644)
	for _, h := range []string{"pause", "fakenginx", "nnp", "nmeter"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, h), "../"+h)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", h, err, out)
		}
	}
	images, err := NodeE2E(Options{Busybox: "/bin/busybox", Pause: filepath.Join(dir, "pause"),
		FakeNginx: filepath.Join(dir, "fakenginx"), NNP: filepath.Join(dir, "nnp"),
		Agnhost: filepath.Join(dir, "nnp"), Nmeter: filepath.Join(dir, "nmeter"),
		Curl: "/usr/bin/curl", Netcat: "/bin/nc.openbsd", Bash: "/bin/bash", Dig: "/usr/bin/dig", Getent: "/usr/bin/getent",
		AgnhostSource: source})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]v1.Image{}
	for _, img := range images {
		for _, n := range img.Names {
			byName[n] = img.Image
		}
	}
	return byName
}

// The names test/utils/image/manifest.go of Kubernetes v1.37 gives the
// images the NodeConformance specs pull, and what the specs rely on.
func TestNodeE2EImages(t *testing.T) {
	imgs := buildNodeE2E(t)
	for _, name := range []string{
		e2e + "agnhost:2.66.1", e2e + "agnhost:2.55", e2e + "busybox:1.37.0-2", e2e + "nginx:1.27.0-2",
		e2e + "nginx:1.28.0-2", e2e + "nonewprivs:1.4", e2e + "nonroot:1.5", e2e + "glibc-dns-testing:2.1.1",
		"registry.k8s.io/pause:3.10.2",
	} {
		if imgs[name] == nil {
			t.Errorf("%s is not built", name)
		}
	}
	config := func(name string) v1.Config {
		cf, err := imgs[name].ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		return cf.Config
	}
	if c := config(e2e + "agnhost:2.66.1"); len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/agnhost" || len(c.Cmd) != 1 || c.Cmd[0] != "pause" {
		t.Errorf("agnhost runs %q %q, want [/agnhost] [pause]", c.Entrypoint, c.Cmd)
	}
	agnhost := files(t, imgs[e2e+"agnhost:2.66.1"])
	for _, p := range []string{"agnhost", "agnhost-2", "uploads", "usr/bin/curl", "usr/bin/nc", "bin/sh", "bin/bash", "bin/nmeter", "localhost.crt", "localhost.key", "usr/bin/dig", "usr/bin/getent"} {
		if agnhost[p] == nil {
			t.Errorf("agnhost lacks /%s", p)
		}
	}
	// The DNS specs' glibc querier runs dig and getent.
	dnsTesting := files(t, imgs[e2e+"glibc-dns-testing:2.1.1"])
	for _, p := range []string{"usr/bin/dig", "usr/bin/getent", "bin/sh"} {
		if dnsTesting[p] == nil {
			t.Errorf("glibc-dns-testing lacks /%s", p)
		}
	}
	if c := config(e2e + "nonroot:1.5"); c.User != "1234" {
		t.Errorf("nonroot runs as %q, want 1234", c.User)
	}
	if c := config(e2e + "nonewprivs:1.4"); len(c.Cmd) != 1 || c.Cmd[0] != "nnp" {
		t.Errorf("nonewprivs runs %q, want [nnp]", c.Cmd)
	}
	if nnp := files(t, imgs[e2e+"nonewprivs:1.4"])["usr/local/bin/nnp"]; nnp == nil || nnp.Mode&0o4000 == 0 || nnp.Uid != 0 {
		t.Errorf("nnp is not setuid root: %+v", nnp)
	}
	if files(t, imgs[e2e+"busybox:1.37.0-2"])["bin/nmeter"] == nil {
		t.Error("busybox lacks nmeter, which the lifecycle specs time with")
	}
}
