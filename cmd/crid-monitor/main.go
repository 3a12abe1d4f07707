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
//	crid-monitor infra [flags]   a pod's infra process (see pkg/infra)
//
// It runs from a sealed in-memory copy; it is not meant to be run by hand.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"github.com/crid-dev/crid/pkg/infra"
	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// The main goroutine stays on the main thread, which execs: capabilities
// and no_new_privs are set per thread.
func init() { runtime.LockOSThread() }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "crid-monitor is started by crid: start BUNDLE | exited ... | init | infra [flags]")
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
	case infra.Command:
		os.Exit(runInfra(os.Args[2:]))
	}
	fmt.Fprintf(os.Stderr, "crid-monitor: unknown command %q\n", os.Args[1])
	os.Exit(2)
}

func runInfra(args []string) int {
	fs := flag.NewFlagSet(infra.Command, flag.ContinueOnError)
	hostname := fs.String("hostname", "", "hostname of the pod's UTS namespace")
	ownNet := fs.Bool("net", false, "the pod has its own network namespace: bring lo up")
	uid := fs.Int64("uid", -1, "user to run as")
	gid := fs.Int64("gid", -1, "group to run as")
	var groups []int64
	fs.Func("group", "a supplemental group (repeatable)", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		groups = append(groups, n)
		return err
	})
	seccompFD := fs.Int("seccomp-fd", -1, "read the seccomp program to run under from this descriptor")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id := infra.Identity{Groups: groups}
	if *seccompFD >= 0 {
		f := os.NewFile(uintptr(*seccompFD), "seccomp program")
		prog, err := io.ReadAll(f)
		f.Close()
		if err != nil || len(prog) == 0 {
			fmt.Fprintf(os.Stderr, "infra: read the seccomp program: %d bytes, %v\n", len(prog), err)
			return 1
		}
		id.Seccomp = prog
	}
	if *uid >= 0 {
		id.UID = uid
	}
	if *gid >= 0 {
		id.GID = gid
	}
	return infra.Run(*hostname, *ownNet, id)
}
