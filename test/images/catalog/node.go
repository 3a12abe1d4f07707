package catalog

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NodeE2E builds the images the node e2e suite of Kubernetes v1.37
// (k8s.io/kubernetes/test/e2e_node) pulls in its NodeConformance specs,
// under the names test/utils/image/manifest.go gives them. Where each
// differs from upstream:
//
//   - agnhost 2.66.1 (also tagged 2.55, the suite's "previous" agnhost):
//     the real agnhost, built from k8s.io/kubernetes/test/images/agnhost
//     of the same release, on the busybox layer instead of Alpine, with
//     Debian's curl, OpenBSD netcat and bash (as upstream's Alpine
//     packages; with their libraries), which the networking and probe
//     specs exec, and Debian's dig and glibc's getent, which the cluster
//     DNS conformance specs run; no iperf, socat or CoreDNS; /agnhost-2, /uploads, porter's localhost TLS pair
//     and the user and group 1000 and 50000 of the upstream Dockerfile are
//     there.
//   - busybox 1.37.0-2, nonroot 1.5 (user 1234) and glibc-dns-testing 2.1.1:
//     Debian's busybox, which is linked against glibc, so `hostname -f`
//     resolves through glibc as in the Debian-based upstream image;
//     glibc-dns-testing has dig and getent too.
//     Debian's busybox has no nmeter applet, which the suite's lifecycle
//     specs time with: busybox and agnhost (whose Alpine base has it) have
//     test/images/nmeter's time fields. Debian's busybox 1.35 ash drops
//     environment variables whose names are not shell identifiers
//     (data-1), which upstream's busybox 1.37 passes on.
//   - nginx 1.27.0-2 and 1.28.0-2: test/images/fakenginx serving port 80.
//   - nonewprivs 1.4: test/images/nnp, setuid root, as CMD ["nnp"].
//   - pause 3.10.2: test/images/pause, as user 65535.
func NodeE2E(o Options) ([]Image, error) {
	base, err := BusyboxLayer(o.Busybox)
	if err != nil {
		return nil, err
	}
	helpers := map[string][]byte{}
	for name, p := range map[string]string{
		"agnhost": o.Agnhost, "pause": o.Pause, "nginx": o.FakeNginx, "nnp": o.NNP, "nmeter": o.Nmeter,
		"localhost.crt": filepath.Join(o.AgnhostSource, "porter", "localhost.crt"),
		"localhost.key": filepath.Join(o.AgnhostSource, "porter", "localhost.key"),
	} {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read helper %s: %w", name, err)
		}
		helpers[name] = data
	}

	var tools []Entry
	var dns []Entry
	for _, p := range []struct{ host, inImage string }{{o.Dig, "usr/bin/dig"}, {o.Getent, "usr/bin/getent"}} {
		entries, err := HostProgram(o.Busybox, p.host, p.inImage)
		if err != nil {
			return nil, err
		}
		dns = append(dns, entries...)
	}
	for _, p := range []struct{ host, inImage string }{{o.Curl, "usr/bin/curl"}, {o.Netcat, "usr/bin/nc"}, {o.Bash, "bin/bash"}} {
		entries, err := HostProgram(o.Busybox, p.host, p.inImage)
		if err != nil {
			return nil, err
		}
		tools = append(tools, entries...)
	}

	b := builder{base: base}
	sh := v1.Config{Env: []string{"PATH=" + path}, Cmd: []string{"sh"}}
	b.add([]string{e2e + "busybox:1.37.0-2"}, sh, File("bin/nmeter", 0o755, helpers["nmeter"]))
	nonroot := sh
	nonroot.User = "1234"
	b.add([]string{e2e + "nonroot:1.5"}, nonroot)
	b.add([]string{e2e + "glibc-dns-testing:2.1.1"}, sh, dedupe(dns)...)

	b.add([]string{e2e + "agnhost:2.66.1", e2e + "agnhost:2.55"}, v1.Config{
		Env:        []string{"PATH=" + path},
		Entrypoint: []string{"/agnhost"},
		Cmd:        []string{"pause"},
		ExposedPorts: map[string]struct{}{
			"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {},
		},
	}, append([]Entry{
		File("agnhost", 0o755, helpers["agnhost"]),
		Symlink("agnhost-2", "agnhost"),
		File("bin/nmeter", 0o755, helpers["nmeter"]),
		File("localhost.crt", 0o644, helpers["localhost.crt"]),
		File("localhost.key", 0o644, helpers["localhost.key"]),
		Dir("uploads", 0o755),
		File("etc/passwd", 0o644, []byte(passwd+"user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh\n")),
		File("etc/group", 0o644, []byte(group+"user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")),
		Dir("home/user-defined-in-image", 0o755),
	}, dedupe(append(tools, dns...))...)...)

	nginx := v1.Config{
		Env: []string{"PATH=" + path}, Cmd: []string{"nginx", "-g", "daemon off;"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}}, StopSignal: "SIGQUIT",
	}
	nginxFiles := []Entry{
		Dir("etc/nginx", 0o755), Dir("etc/nginx/conf.d", 0o755),
		Dir("usr/share", 0o755), Dir("usr/share/nginx", 0o755), Dir("usr/share/nginx/html", 0o755),
		File("usr/sbin/nginx", 0o755, helpers["nginx"]),
		File("etc/nginx/conf.d/default.conf", 0o644, []byte("server {\n    listen 80;\n    root /usr/share/nginx/html;\n}\n")),
		File("usr/share/nginx/html/index.html", 0o644, []byte("<html><body><h1>Welcome to nginx!</h1></body></html>\n")),
	}
	b.add([]string{e2e + "nginx:1.27.0-2"}, nginx, nginxFiles...)
	b.add([]string{e2e + "nginx:1.28.0-2"}, nginx, nginxFiles...)

	b.add([]string{e2e + "nonewprivs:1.4"}, v1.Config{Env: []string{"PATH=" + path}, Cmd: []string{"nnp"}},
		File("usr/local/bin/nnp", 0o4755, helpers["nnp"]))
	b.addBare([]string{"registry.k8s.io/pause:3.10.2"},
		v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		File("pause", 0o755, helpers["pause"]))
	return b.images, b.err
}
