package seccomp

import (
	"testing"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BenchmarkFilter compiles the default profile (what every container
// started with RuntimeDefault pays in its init, before the exec).
func BenchmarkFilter(b *testing.B) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
	prof, err := profiles.GetDefaultProfile(spec)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		f, err := Filter(prof, true)
		if err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
}
