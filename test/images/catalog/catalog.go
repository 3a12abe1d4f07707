// Package catalog builds the images crid's tests pull: stand-ins for every
// image critest v1.37.0 names, made offline from Debian's busybox and small
// static helpers, with the properties critest asserts about each (see
// shared/critest-notes.md). The same inputs always give the same digests.
package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/crid-dev/crid/pkg/image/archive"
)

// Options says where the inputs are.
type Options struct {
	Busybox string // a dynamically linked busybox (Debian's busybox package)
	// Static helper binaries, built from test/images/{pause,fakenginx,nnp}.
	Pause, FakeNginx, NNP string
	// Agnhost is k8s.io/kubernetes/test/images/agnhost, built static, and
	// AgnhostSource that directory of the release, whose porter/localhost
	// TLS pair upstream's image carries: the node e2e images only.
	Agnhost, AgnhostSource string
	// Nmeter is test/images/nmeter; Curl, Netcat and Bash the host's
	// (Debian's) curl, OpenBSD netcat and bash, Dig and Getent its dig
	// (bind9-dnsutils) and glibc's getent: the node e2e images only.
	Nmeter, Curl, Netcat, Bash, Dig, Getent string
}

// Image is one image and every name it is pushed under.
type Image struct {
	Names []string // upstream references, as critest spells them
	Image v1.Image
}

const (
	e2e     = "registry.k8s.io/e2e-test-images/"
	staging = "gcr.io/k8s-staging-cri-tools/"
	ecr     = "public.ecr.aws/docker/library/"
	path    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// BusyboxLayer is the base layer of every critest image: Debian's busybox
// with its applets, its C library and /etc.
func BusyboxLayer(busybox string) (v1.Layer, error) {
	entries, err := busyboxEntries(busybox)
	if err != nil {
		return nil, err
	}
	return Layer(entries)
}

// BusyboxRoot unpacks Debian's busybox layer into a fresh directory, a
// container root for the executor's and monitor's tests. It skips the test,
// naming why, when not root or when /bin/busybox is missing.
func BusyboxRoot(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("running containers needs root")
	}
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		tb.Skip("needs Debian's busybox at /bin/busybox (hack/install-deps.sh installs it)")
	}
	root := filepath.Join(tb.TempDir(), "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	layer, err := BusyboxLayer(busybox)
	if err != nil {
		tb.Fatal(err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	if _, err := archive.Apply(root, rc, archive.Options{}); err != nil {
		tb.Fatal(err)
	}
	return root
}

// Critest builds every image critest pulls, but the one pinned by an
// upstream digest (test-image-digest), which no one can rebuild.
func Critest(o Options) ([]Image, error) {
	base, err := BusyboxLayer(o.Busybox)
	if err != nil {
		return nil, err
	}
	read := func(p string) []byte {
		if err == nil {
			var data []byte
			data, err = os.ReadFile(p)
			return data
		}
		return nil
	}
	pause, nginx, nnp := read(o.Pause), read(o.FakeNginx), read(o.NNP)
	if err != nil {
		return nil, fmt.Errorf("read helper: %w", err)
	}

	b := builder{base: base}
	sh := v1.Config{Env: []string{"PATH=" + path}, Cmd: []string{"sh"}}
	withUser := func(u string) v1.Config { c := sh; c.User = u; return c }
	nginxLayer := func(port int) []Entry {
		return []Entry{
			Dir("etc/nginx", 0o755), Dir("etc/nginx/conf.d", 0o755),
			Dir("usr/share", 0o755), Dir("usr/share/nginx", 0o755), Dir("usr/share/nginx/html", 0o755),
			File("usr/sbin/nginx", 0o755, nginx),
			File("etc/nginx/conf.d/default.conf", 0o644, fmt.Appendf(nil, "server {\n    listen %d;\n    root /usr/share/nginx/html;\n}\n", port)),
			File("usr/share/nginx/html/index.html", 0o644, []byte("<html><body><h1>Welcome to nginx!</h1></body></html>\n")),
		}
	}
	nginxConfig := v1.Config{
		Env: []string{"PATH=" + path}, Cmd: []string{"nginx", "-g", "daemon off;"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}}, StopSignal: "SIGTERM",
	}
	predefined := []Entry{
		File("etc/passwd", 0o644, []byte(passwd+"default-user:x:1000:1000:Default User:/home/default-user:/bin/sh\n")),
		File("etc/group", 0o644, []byte(group+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")),
		Dir("home/default-user", 0o755),
	}

	b.add([]string{e2e + "busybox:1.29-2"}, sh)
	b.add([]string{e2e + "nginx:1.14-2"}, nginxConfig, nginxLayer(80)...)
	b.add([]string{staging + "hostnet-nginx-" + runtime.GOARCH + ":latest"}, nginxConfig, nginxLayer(12003)...)
	b.add([]string{e2e + "httpd:2.4.39-4"}, v1.Config{
		Env:          []string{"PATH=" + path},
		Cmd:          []string{"sh", "-c", "echo 'httpd: serving /usr/local/apache2/htdocs on port 80'; exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
	}, Dir("usr/local/apache2", 0o755), Dir("usr/local/apache2/htdocs", 0o755),
		File("usr/local/apache2/htdocs/index.html", 0o644, []byte("<html><body><h1>It works!</h1></body></html>\n")))
	b.add([]string{e2e + "nonewprivs:1.3"}, v1.Config{Env: []string{"PATH=" + path}, Entrypoint: []string{"/usr/local/bin/nnp"}},
		File("usr/local/bin/nnp", 0o4755, nnp))
	// The same image under two registries: critest checks they get one ID.
	b.addBare([]string{"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"},
		v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		File("pause", 0o755, pause))

	b.add([]string{staging + "test-image-user-uid:latest"}, withUser("1002"))
	b.add([]string{staging + "test-image-user-username:latest"}, withUser("www-data"))
	b.add([]string{staging + "test-image-user-uid-group:latest"}, withUser("1003:1004"))
	b.add([]string{staging + "test-image-user-username-group:latest"}, withUser("www-data:1004"))
	b.add([]string{staging + "test-image-predefined-group:latest"}, withUser("1000"), predefined...)
	b.add([]string{staging + "test-image-latest:latest", staging + "test-image-tag:test", staging + "test-image-tag:all"}, sh)
	for i := 1; i <= 3; i++ {
		// Three different images: each has a file of its own.
		b.add([]string{fmt.Sprintf("%stest-image-%d:latest", staging, i)}, sh,
			File(fmt.Sprintf("etc/test-image-%d", i), 0o644, fmt.Appendf(nil, "%d\n", i)))
	}
	b.add([]string{staging + "test-image-tags:1", staging + "test-image-tags:2", staging + "test-image-tags:3"}, sh,
		File("etc/test-image-tags", 0o644, []byte("one image, three tags\n")))
	b.add([]string{ecr + "busybox:1.35.0-glibc", ecr + "busybox:1-uclibc", ecr + "busybox:1", ecr + "busybox:1-glibc", ecr + "busybox:1-musl"}, sh)
	return b.images, b.err
}

type builder struct {
	base   v1.Layer
	images []Image
	err    error
}

// add makes an image of the busybox layer, plus a layer of extra if any.
func (b *builder) add(names []string, cfg v1.Config, extra ...Entry) {
	layers := []v1.Layer{b.base}
	b.build(names, cfg, layers, extra)
}

// addBare makes an image of extra alone, without busybox.
func (b *builder) addBare(names []string, cfg v1.Config, extra ...Entry) {
	b.build(names, cfg, nil, extra)
}

func (b *builder) build(names []string, cfg v1.Config, layers []v1.Layer, extra []Entry) {
	if b.err != nil {
		return
	}
	// Each call is one image, with an ID of its own even where the content
	// matches another's: critest checks the tags each image carries, and
	// upstream these are different images.
	labels := map[string]string{"io.crid.test-image": names[0]}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	cfg.Labels = labels
	if len(extra) > 0 {
		l, err := Layer(extra)
		if err != nil {
			b.err = fmt.Errorf("%s: %w", names[0], err)
			return
		}
		layers = append(layers, l)
	}
	img, err := Assemble(cfg, layers...)
	if err != nil {
		b.err = fmt.Errorf("%s: %w", names[0], err)
		return
	}
	b.images = append(b.images, Image{Names: names, Image: img})
}

// Assemble makes a linux image of the host's architecture from layers.
func Assemble(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// Hosts lists the registries the names of images point at.
func Hosts(images []Image) []string {
	seen := map[string]bool{}
	for _, img := range images {
		for _, n := range img.Names {
			seen[hostOf(n)] = true
		}
	}
	var hosts []string
	for h := range seen {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts
}

func hostOf(ref string) string {
	for i := range len(ref) {
		if ref[i] == '/' {
			return ref[:i]
		}
	}
	return ref
}
