// Command build makes a set of test images (test/images/catalog: critest's,
// or the node e2e suite's) and pushes them to a local registry, each upstream name R stored as REGISTRY/R, and
// writes the registries.conf that sends those upstream hosts there and
// nowhere else: critest keeps its names, and nothing leaves the machine.
//
//	build -registry 127.0.0.1:5000 -busybox /bin/busybox -helpers DIR -registries-conf FILE
//	build -set node-e2e -agnhost FILE ...
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
	set := flag.String("set", "critest", "which images: critest, or node-e2e (the node e2e suite's)")
	curl := flag.String("curl", "/usr/bin/curl", "dynamically linked curl of the host (node-e2e only)")
	netcat := flag.String("netcat", "/bin/nc.openbsd", "dynamically linked OpenBSD netcat of the host (node-e2e only)")
	bash := flag.String("bash", "/bin/bash", "dynamically linked bash of the host (node-e2e only)")
	agnhostSource := flag.String("agnhost-source", "", "k8s.io/kubernetes/test/images/agnhost of the release (node-e2e only), for porter's TLS pair")
	agnhost := flag.String("agnhost", "", "static agnhost binary (node-e2e only; test/e2e/build-k8s.sh agnhost)")
	extraHosts := flag.String("remap-hosts", "", "comma-separated hosts also sent to -registry, where nothing is: images meant to fail to pull fail here")
	flag.Parse()
	if err := run(*set, *registry, *busybox, *helpers, *agnhost, *agnhostSource, *curl, *netcat, *bash, *regConf, *extraHosts); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(set, registry, busybox, helpers, agnhost, agnhostSource, curl, netcat, bash, regConf, extraHosts string) error {
	opts := catalog.Options{
		Busybox:   busybox,
		Pause:     filepath.Join(helpers, "pause"),
		FakeNginx: filepath.Join(helpers, "fakenginx"),
		NNP:       filepath.Join(helpers, "nnp"),
		Agnhost:   agnhost,
		Nmeter:    filepath.Join(helpers, "nmeter"),
		Curl:      curl,
		Netcat:    netcat,
		Bash:      bash,
		// agnhost's source directory: where the binary was built from.
		AgnhostSource: agnhostSource,
	}
	var images []catalog.Image
	var err error
	switch set {
	case "critest":
		images, err = catalog.Critest(opts)
	case "node-e2e":
		images, err = catalog.NodeE2E(opts)
	default:
		err = fmt.Errorf("-set %q: want critest or node-e2e", set)
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
