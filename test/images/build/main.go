// Command build makes a set of test images (test/images/catalog: critest's,
// the node e2e suite's, or a kubeadm cluster's) and pushes them to a local registry, each upstream name R stored as REGISTRY/R, and
// writes the registries.conf that sends those upstream hosts there and
// nowhere else: critest keeps its names, and nothing leaves the machine.
//
//	build -registry 127.0.0.1:5000 -busybox /bin/busybox -helpers DIR -registries-conf FILE
//	build -set node-e2e -agnhost FILE ...
//	build -set cluster -agnhost FILE -kube-bin DIR -kube-version V -etcd FILE ...
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crid-dev/crid/test/images/catalog"
)

func main() {
	registry := flag.String("registry", "127.0.0.1:5000", "host:port of the local registry to push to")
	busybox := flag.String("busybox", "/bin/busybox", "dynamically linked busybox binary")
	helpers := flag.String("helpers", "", "directory holding the static pause, fakenginx, nnp (and for node-e2e nmeter) binaries")
	regConf := flag.String("registries-conf", "", "write a registries.conf remapping the images' hosts to -registry")
	set := flag.String("set", "critest", "which images: critest, node-e2e (the node e2e suite's) or cluster (kubeadm's and node-e2e's)")
	var o catalog.Options
	var c catalog.ClusterOptions
	flag.StringVar(&o.Curl, "curl", "/usr/bin/curl", "dynamically linked curl of the host (node-e2e, cluster)")
	flag.StringVar(&o.Netcat, "netcat", "/bin/nc.openbsd", "dynamically linked OpenBSD netcat of the host (node-e2e, cluster)")
	flag.StringVar(&o.Bash, "bash", "/bin/bash", "dynamically linked bash of the host (node-e2e, cluster)")
	flag.StringVar(&o.Dig, "dig", "/usr/bin/dig", "dig of the host, bind9-dnsutils (node-e2e, cluster)")
	flag.StringVar(&o.Getent, "getent", "/usr/bin/getent", "glibc's getent of the host (node-e2e, cluster)")
	flag.StringVar(&o.AgnhostSource, "agnhost-source", "", "k8s.io/kubernetes/test/images/agnhost of the release (node-e2e, cluster), for porter's TLS pair")
	flag.StringVar(&o.Agnhost, "agnhost", "", "static agnhost binary (node-e2e, cluster; test/e2e/build-k8s.sh agnhost)")
	flag.StringVar(&c.KubeBin, "kube-bin", "", "directory of kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy (cluster)")
	flag.StringVar(&c.KubeVersion, "kube-version", "", "their version, the images' tag (cluster)")
	flag.StringVar(&c.Etcd, "etcd", "", "static etcd binary (cluster)")
	flag.StringVar(&c.EtcdTag, "etcd-tag", "", "tag of registry.k8s.io/etcd kubeadm asks for (cluster)")
	flag.StringVar(&c.CoreDNS, "coredns", "", "static coredns binary (cluster)")
	flag.StringVar(&c.CoreDNSTag, "coredns-tag", "", "tag of registry.k8s.io/coredns/coredns kubeadm asks for (cluster)")
	flag.StringVar(&c.Xtables, "xtables", "/usr/sbin/xtables-nft-multi", "the host's iptables, nf_tables backend (cluster)")
	flag.StringVar(&c.XtablesLib, "xtables-lib", "/usr/lib/x86_64-linux-gnu/xtables", "its extensions (cluster)")
	extraHosts := flag.String("remap-hosts", "", "comma-separated hosts also sent to -registry, where nothing is: images meant to fail to pull fail here")
	flag.Parse()
	o.Busybox = *busybox
	o.Pause = filepath.Join(*helpers, "pause")
	o.FakeNginx = filepath.Join(*helpers, "fakenginx")
	o.NNP = filepath.Join(*helpers, "nnp")
	o.Nmeter = filepath.Join(*helpers, "nmeter")
	if err := run(*set, *registry, o, c, *regConf, *extraHosts); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(set, registry string, opts catalog.Options, c catalog.ClusterOptions, regConf, extraHosts string) error {
	var images []catalog.Image
	var err error
	switch set {
	case "critest":
		images, err = catalog.Critest(opts)
	case "node-e2e":
		images, err = catalog.NodeE2E(opts)
	case "cluster":
		images, err = catalog.Cluster(opts, c)
	default:
		err = fmt.Errorf("-set %q: want critest, node-e2e or cluster", set)
	}
	if err != nil {
		return err
	}
	pushed, kept := 0, 0
	for _, img := range images {
		digest, err := img.Image.Digest()
		if err != nil {
			return err
		}
		for _, n := range img.Names {
			ref, err := name.ParseReference(registry+"/"+n, name.Insecure)
			if err != nil {
				return fmt.Errorf("name %s: %w", n, err)
			}
			if d, err := remote.Head(ref); err == nil && d.Digest == digest {
				kept++
				continue
			}
			if err := remote.Write(ref, img.Image); err != nil {
				return fmt.Errorf("push %s: %w", ref, err)
			}
			pushed++
		}
	}
	fmt.Printf("images: %d names pushed, %d already current, in %s\n", pushed, kept, registry)
	if regConf == "" {
		return nil
	}
	hosts := catalog.Hosts(images)
	if extraHosts != "" {
		hosts = append(hosts, strings.Split(extraHosts, ",")...)
	}
	return writeRegistriesConf(regConf, registry, hosts)
}

// writeRegistriesConf remaps each host, and docker.io for short names, to
// a path under the local registry. A remapped prefix never falls back to
// its real host, so an image missing here fails instead of leaking out.
func writeRegistriesConf(path, registry string, hosts []string) error {
	var b strings.Builder
	b.WriteString("# Written by test/images/build: every upstream registry the tests name is\n")
	b.WriteString("# served by the local registry at " + registry + "; nothing is fetched from outside.\n")
	b.WriteString("unqualified-search-registries = [\"docker.io\"]\n")
	seen := map[string]bool{}
	for _, h := range append(hosts, "docker.io") {
		if seen[h] {
			continue
		}
		seen[h] = true
		fmt.Fprintf(&b, "\n[[registry]]\nprefix = %q\nlocation = %q\ninsecure = true\n", h, registry+"/"+h)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
