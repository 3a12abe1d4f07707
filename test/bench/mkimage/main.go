// Command mkimage pushes the pull benchmark's image to a registry: LAYERS
// layers of about SIZE MiB in all, each half incompressible data and half
// text (about what a real image compresses to), made from a fixed seed so
// every run pulls the same bytes.
//
//	mkimage -ref 127.0.0.1:5055/bench/multilayer:1 -layers 5 -size 200
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crid-dev/crid/test/images/catalog"
)

func main() {
	ref := flag.String("ref", "", "where to push the image")
	layers := flag.Int("layers", 5, "number of layers")
	size := flag.Int("size", 200, "total uncompressed size in MiB")
	flag.Parse()
	if err := run(*ref, *layers, *size); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(ref string, nLayers, sizeMiB int) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(42, 1))
	perLayer := sizeMiB << 20 / nLayers
	const filesPerLayer = 16
	var ls []v1.Layer
	for l := range nLayers {
		entries := []catalog.Entry{catalog.Dir(fmt.Sprintf("layer%d", l), 0o755)}
		for f := range filesPerLayer {
			data := make([]byte, perLayer/filesPerLayer)
			if f%2 == 0 {
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
			} else {
				line := []byte(strings.Repeat(fmt.Sprintf("layer %d file %d: some text that compresses\n", l, f), 1))
				for i := range data {
					data[i] = line[i%len(line)]
				}
			}
			entries = append(entries, catalog.File(fmt.Sprintf("layer%d/file%02d", l, f), 0o644, data))
		}
		layer, err := catalog.Layer(entries)
		if err != nil {
			return err
		}
		ls = append(ls, layer)
	}
	img, err := catalog.Assemble(v1.Config{Cmd: []string{"/bin/true"}}, ls...)
	if err != nil {
		return err
	}
	if err := remote.Write(r, img); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	m, _ := img.Manifest()
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	fmt.Printf("pushed %s: %d layers, %d MiB uncompressed, %.1f MiB compressed\n", ref, nLayers, sizeMiB, float64(total)/(1<<20))
	return nil
}
