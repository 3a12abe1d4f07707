package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ClusterOptions says where a kubeadm control plane's binaries are and
// which tags kubeadm asks for (`kubeadm config images list`).
type ClusterOptions struct {
	// KubeBin holds kube-apiserver, kube-controller-manager,
	// kube-scheduler and kube-proxy of KubeVersion (test/e2e/build-k8s.sh).
	KubeBin, KubeVersion string
	Etcd, EtcdTag        string // etcd and the tag of registry.k8s.io/etcd
	CoreDNS, CoreDNSTag  string // coredns and the tag of registry.k8s.io/coredns/coredns
	// Xtables is the host's xtables-nft-multi and XtablesLib the directory
	// of its extensions (Debian's iptables), for kube-proxy's iptables mode.
	Xtables, XtablesLib string
}

// Cluster builds the images `kubeadm init` and `kubeadm join` pull, under
// their registry.k8s.io names, plus the node e2e set (agnhost, busybox,
// nginx...) the cluster's own checks run. Where each differs from upstream:
//
//   - kube-apiserver, kube-controller-manager, kube-scheduler, etcd: the
//     static binaries in /usr/local/bin (where kubeadm's manifests find
//     them by name) on the busybox layer instead of distroless.
//   - kube-proxy: with Debian's iptables (nf_tables backend, the host's,
//     with its extensions and libraries) as iptables, iptables-save and
//     iptables-restore, and the ip6tables names; upstream's image picks
//     legacy or nft with iptables-wrapper.
//   - coredns: the build-k8s.sh build with the plugins of kubeadm's
//     Corefile, as /coredns; it runs as root, where upstream's runs as
//     65532 with a file capability to bind port 53.
func Cluster(o Options, c ClusterOptions) ([]Image, error) {
	images, err := NodeE2E(o)
	if err != nil {
		return nil, err
	}
	base, err := BusyboxLayer(o.Busybox)
	if err != nil {
		return nil, err
	}
	b := builder{base: base, images: images}
	const reg = "registry.k8s.io/"
	for _, bin := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		data, err := os.ReadFile(filepath.Join(c.KubeBin, bin))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", bin, err)
		}
		b.add([]string{reg + bin + ":" + c.KubeVersion}, v1.Config{Env: []string{"PATH=" + path}, Entrypoint: []string{"/usr/local/bin/" + bin}},
			File("usr/local/bin/"+bin, 0o755, data))
	}
	etcd, err := os.ReadFile(c.Etcd)
	if err != nil {
		return nil, fmt.Errorf("read etcd: %w", err)
	}
	b.add([]string{reg + "etcd:" + c.EtcdTag}, v1.Config{Env: []string{"PATH=" + path}, Cmd: []string{"/usr/local/bin/etcd"}},
		File("usr/local/bin/etcd", 0o755, etcd), Dir("var/lib/etcd", 0o700))
	coredns, err := os.ReadFile(c.CoreDNS)
	if err != nil {
		return nil, fmt.Errorf("read coredns: %w", err)
	}
	b.add([]string{reg + "coredns/coredns:" + c.CoreDNSTag}, v1.Config{Env: []string{"PATH=" + path}, Entrypoint: []string{"/coredns"},
		ExposedPorts: map[string]struct{}{"53/tcp": {}, "53/udp": {}}},
		File("coredns", 0o755, coredns))

	proxy, err := kubeProxyFiles(o.Busybox, c)
	if err != nil {
		return nil, err
	}
	b.add([]string{reg + "kube-proxy:" + c.KubeVersion}, v1.Config{Env: []string{"PATH=" + path}, Entrypoint: []string{"/usr/local/bin/kube-proxy"}}, proxy...)
	return b.images, b.err
}

// kubeProxyFiles are kube-proxy and the iptables it runs: xtables-nft-multi
// under each name kube-proxy calls, its extensions (which it loads with
// dlopen, so no ELF dependency names them) and every library either needs
// that the busybox layer lacks.
func kubeProxyFiles(busybox string, c ClusterOptions) ([]Entry, error) {
	data, err := os.ReadFile(filepath.Join(c.KubeBin, "kube-proxy"))
	if err != nil {
		return nil, fmt.Errorf("read kube-proxy: %w", err)
	}
	files := []Entry{File("usr/local/bin/kube-proxy", 0o755, data)}
	xt, err := HostProgram(busybox, c.Xtables, "usr/sbin/xtables-nft-multi")
	if err != nil {
		return nil, err
	}
	files = append(files, xt...)
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		files = append(files, Symlink("usr/sbin/"+n, "xtables-nft-multi"))
	}
	exts, err := filepath.Glob(filepath.Join(c.XtablesLib, "*.so"))
	if err != nil || len(exts) == 0 {
		return nil, fmt.Errorf("no iptables extensions in %s (%v)", c.XtablesLib, err)
	}
	inImage := strings.TrimPrefix(c.XtablesLib, "/")
	for _, so := range exts {
		e, err := HostProgram(busybox, so, filepath.Join(inImage, filepath.Base(so)))
		if err != nil {
			return nil, err
		}
		files = append(files, e...)
	}
	// Each extension brings libxtables (and its directories) again.
	return dedupe(files), nil
}

// dedupe keeps the first entry of each path: programs copied from the
// host bring the same libraries and directories.
func dedupe(entries []Entry) []Entry {
	seen := map[string]bool{}
	var out []Entry
	for _, e := range entries {
		if !seen[e.Path] {
			seen[e.Path] = true
			out = append(out, e)
		}
	}
	return out
}
