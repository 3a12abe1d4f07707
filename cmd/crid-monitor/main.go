// Command crid-monitor holds the Go processes crid and a pod's monitor
// (crid-podmon) start beside each pod, in a binary of their own so that
// each costs little memory: crid itself links the CRI's protobuf
// descriptors, gRPC and the image client, whose initialisation these
// should not pay.
//
//	crid-monitor start BUNDLE    the monitor's start helper (pkg/oci/monitor)
//	crid-monitor exited BUNDLE CGROUP OOM PID STATUS NS
//	                             the monitor's exit helper (pkg/oci/monitor)
//	crid-monitor init            a container's init (see pkg/oci/executor)
//
// It runs from a sealed in-memory copy; it is not meant to be run by hand.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// The main goroutine stays on the main thread, which execs: capabilities
// and no_new_privs are set per thread.
func init() { runtime.LockOSThread() }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "crid-monitor is started by crid: start BUNDLE | exited ... | init")
		os.Exit(2)
	}
	switch os.Args[1] {
	case monitor.StartCommand:
		if len(os.Args) != 3 {
			os.Exit(2)
		}
		os.Exit(monitor.RunStart(os.Args[2]))
	case monitor.ExitedCommand:
		os.Exit(monitor.RunExited(os.Args[2:]))
	case executor.InitCommand:
		os.Exit(executor.Init())
	}
	fmt.Fprintf(os.Stderr, "crid-monitor: unknown command %q\n", os.Args[1])
	os.Exit(2)
}
