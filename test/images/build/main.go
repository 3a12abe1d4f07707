// Command build makes the test images (test/images/catalog) and pushes them
// to a local registry, each upstream name R stored as REGISTRY/R, and
// writes the registries.conf that sends those upstream hosts there and
// nowhere else: critest keeps its names, and nothing leaves the machine.
//
//	build -registry 127.0.0.1:5000 -busybox /bin/busybox -helpers DIR -registries-conf FILE
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
	helpers := flag.String("helpers", "", "directory holding the static pause, fakenginx and nnp binaries")
	regConf := flag.String("registries-conf", "", "write a registries.conf remapping the images' hosts to -registry")
	flag.Parse()
	if err := run(*registry, *busybox, *helpers, *regConf); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(registry, busybox, helpers, regConf string) error {
	images, err := catalog.Critest(catalog.Options{
		Busybox:   busybox,
		Pause:     filepath.Join(helpers, "pause"),
		FakeNginx: filepath.Join(helpers, "fakenginx"),
		NNP:       filepath.Join(helpers, "nnp"),
	})
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
	return writeRegistriesConf(regConf, registry, catalog.Hosts(images))
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
