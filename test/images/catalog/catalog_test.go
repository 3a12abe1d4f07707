package catalog

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// build makes the catalog with the real helpers, built for the test.
func build(t *testing.T) map[string]v1.Image {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs Debian's busybox package at /bin/busybox (the test scripts install it)")
	}
	dir := t.TempDir()
	for _, h := range []string{"pause", "fakenginx", "nnp"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, h), "../"+h)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", h, err, out)
		}
	}
	images, err := Critest(Options{Busybox: "/bin/busybox", Pause: filepath.Join(dir, "pause"),
		FakeNginx: filepath.Join(dir, "fakenginx"), NNP: filepath.Join(dir, "nnp")})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]v1.Image{}
	for _, img := range images {
		for _, n := range img.Names {
			if _, dup := byName[n]; dup {
				t.Fatalf("%s built twice", n)
			}
			byName[n] = img.Image
		}
	}
	return byName
}

func configDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestCatalogIdentities(t *testing.T) {
	imgs := build(t)
	same := func(a, b string) bool { return configDigest(t, imgs[a]) == configDigest(t, imgs[b]) }
	if !same("registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9") {
		t.Error("pause differs between its two registries")
	}
	if !same(staging+"test-image-tags:1", staging+"test-image-tags:3") {
		t.Error("test-image-tags tags are different images")
	}
	if same(staging+"test-image-1:latest", staging+"test-image-2:latest") || same(staging+"test-image-2:latest", staging+"test-image-3:latest") {
		t.Error("test-image-1/2/3 are not three images")
	}
	if same(e2e+"busybox:1.29-2", staging+"test-image-latest:latest") || same(e2e+"busybox:1.29-2", staging+"test-image-tag:test") {
		t.Error("critest's test images share an ID with busybox: pulling one would tag the other")
	}
	users := map[string]string{
		"test-image-user-uid": "1002", "test-image-user-username": "www-data",
		"test-image-user-uid-group": "1003:1004", "test-image-user-username-group": "www-data:1004",
		"test-image-predefined-group": "1000",
	}
	for n, want := range users {
		cf, _ := imgs[staging+n+":latest"].ConfigFile()
		if cf.Config.User != want {
			t.Errorf("%s: USER %q, want %q", n, cf.Config.User, want)
		}
	}
	// Rebuilding gives the same digests, so image IDs are stable across runs.
	again := build(t)
	for n, img := range imgs {
		if configDigest(t, again[n]) != configDigest(t, img) {
			t.Errorf("%s is not reproducible", n)
		}
	}
}

// files reads the flattened file system of img: path -> header.
func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestBusyboxLayout(t *testing.T) {
	imgs := build(t)
	fs := files(t, imgs[e2e+"busybox:1.29-2"])
	for _, applet := range []string{"sh", "ls", "top", "sleep", "ping", "mount", "hostname", "pidof"} {
		h := fs["bin/"+applet]
		if h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" || h.Mode&0o755 != 0o755 {
			t.Errorf("bin/%s is not a 0755 hard link to busybox: %+v", applet, h)
		}
	}
	for _, p := range []string{"bin/pgrep", "bin/ipcs", "etc/passwd", "etc/group", "lib64/ld-linux-x86-64.so.2"} {
		if fs[p] == nil {
			t.Errorf("%s missing", p)
		}
	}
	if h := fs["tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("tmp is not 1777: %+v", h)
	}
	nnp := files(t, imgs[e2e+"nonewprivs:1.3"])["usr/local/bin/nnp"]
	if nnp == nil || nnp.Mode&0o4000 == 0 || nnp.Uid != 0 {
		t.Errorf("nnp is not setuid root: %+v", nnp)
	}
}

// TestBusyboxRuns unpacks the busybox image and runs critest's commands in
// it with chroot: the userland, the stand-in scripts and the libraries must
// all work inside the image, not just be present.
func TestBusyboxRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	imgs := build(t)
	root := t.TempDir()
	rc := mutate.Extract(imgs[e2e+"busybox:1.29-2"])
	defer rc.Close()
	untar := exec.Command("tar", "-x", "-p", "-C", root)
	untar.Stdin = rc
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("untar: %v\n%s", err, out)
	}
	// A container runtime gives every container a /dev with null in it;
	// the shell needs it for background jobs.
	if err := syscall.Mknod(filepath.Join(root, "dev", "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatalf("mknod /dev/null: %v", err)
	}
	os.MkdirAll(filepath.Join(root, "proc"), 0o555)
	if err := syscall.Mount("proc", filepath.Join(root, "proc"), "proc", 0, ""); err != nil {
		t.Fatalf("mount proc: %v", err)
	}
	defer syscall.Unmount(filepath.Join(root, "proc"), syscall.MNT_DETACH)

	tests := []struct {
		script string
		want   string
	}{
		{"echo -n hello", "hello"},
		{"id -u nobody", "65534\n"},
		// The loop waits out the moment before the background child execs sleep.
		{"sleep 30 & for i in 1 2 3 4 5 6 7 8 9 10; do pgrep sleep >/dev/null && { echo found; break; }; usleep 100000; done; kill $!", "found\n"},
		{"pgrep no-such-process-name || echo none", "none\n"},
		{"ipcs -m | head -1", "------ Shared Memory Segments --------\n"},
		{"ls -A /etc | grep -c passwd", "1\n"},
	}
	for _, tt := range tests {
		cmd := exec.Command("chroot", root, "/bin/sh", "-c", tt.script)
		cmd.Env = []string{"PATH=" + path}
		out, err := cmd.Output()
		if err != nil || string(out) != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.script, out, err, tt.want)
		}
	}
}
