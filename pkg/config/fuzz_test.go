package config

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary text to the config parser: it must never
// panic, and whatever it accepts must print and load back unchanged.
func FuzzDecode(f *testing.F) {
	var def bytes.Buffer
	Default().WriteTOML(&def)
	for _, seed := range []string{
		def.String(),
		"root = \"/x\"\n[runtime]\ncgroup_driver = \"cgroupfs\"",
		"[image]\npinned_images = [\"busybox\", \"registry.k8s.io/pause:3.10\"]",
		"[network]\ncni_plugin_dirs = [\"/a\", \"/b\"]",
		"[[runtime]]\n",
		"root = 1",
		"a.b.c = 1",
		"log_level = \"\\u0000\"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cfg := Default()
		if err := cfg.decode(text); err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			return
		}
		var b bytes.Buffer
		if err := cfg.WriteTOML(&b); err != nil {
			t.Fatalf("accepted config does not print: %v", err)
		}
		back := Default()
		if err := back.decode(b.String()); err != nil {
			t.Fatalf("printed config does not load: %v\n%s", err, b.String())
		}
		if !reflect.DeepEqual(normalise(back), normalise(cfg)) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", back, cfg)
		}
	})
}

// normalise treats a nil and an empty list alike: TOML cannot tell them apart.
func normalise(c Config) Config {
	if len(c.Image.PinnedImages) == 0 {
		c.Image.PinnedImages = nil
	}
	return c
}
