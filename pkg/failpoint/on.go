//go:build failpoints

package failpoint

import (
	"os"
	"syscall"
)

var (
	target = os.Getenv("CRID_FAILPOINT")
	trace  = os.Getenv("CRID_FAILPOINT_TRACE")
)

// Hit marks a point where a crash is tested: it records the point in the
// trace and dies there if it is the target.
func Hit(name string) {
	if trace != "" {
		if f, err := os.OpenFile(trace, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			f.WriteString(name + "\n") // one write of O_APPEND: lines never interleave
			f.Close()
		}
	}
	if name == target {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// Override is the environment's CRID_OVERRIDE_<name> when set, else
// value: how a test feigns what it cannot change on the host, such as
// the boot ID of a reboot.
func Override(name, value string) string {
	if v, ok := os.LookupEnv("CRID_OVERRIDE_" + name); ok {
		return v
	}
	return value
}
