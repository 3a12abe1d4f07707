// Package infra is what crid knows of a pod's infra process: PID 1 of a
// pod's shared PID namespace, and the process that makes the namespaces
// of a pod in a user namespace. The process itself is C, in the sealed
// crid-podmon binary (cmd/crid-podmon/infra.c), so that what each such
// pod keeps costs little memory and starts at once.
package infra

import (
	"fmt"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/oci/seccomp"
)

// Command is the crid-podmon subcommand that runs a pod's infra process:
//
//	crid-podmon infra --root-fd FD --hostname NAME [--net] [--uid N]
//	    [--gid N] [--group N]... [--seccomp-fd FD]
//
// It enters the empty mount of --root-fd as its root and working
// directory, names the host, brings up lo with --net, takes the identity
// (no capabilities, no_new_privs, not dumpable, the seccomp program read
// from --seccomp-fd), writes
// "ready" (or "infra: " and its error) on stdout, then reaps orphans
// until SIGTERM or SIGINT. _CRID_CGROUP_JOIN (nsenter.CgroupJoinEnv)
// names the v1 cgroup files it joins first.
const Command = "infra"

// Profile is the seccomp profile of an infra process under the runtime's
// default: the default profile of a process with no capabilities.
func Profile() (*specs.LinuxSeccomp, error) {
	return profiles.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
}

// Program is Profile compiled, what --seccomp-fd hands the process. It
// never changes while crid runs: crid holds it once (147 µs of every
// shared-PID pod's start when built each time).
func Program() ([]byte, error) {
	prof, err := Profile()
	if err != nil {
		return nil, fmt.Errorf("the infra process's seccomp profile: %w", err)
	}
	prog, err := seccomp.Compile(prof)
	if err != nil {
		return nil, fmt.Errorf("compile the infra process's seccomp profile: %w", err)
	}
	return prog, nil
}

// LoopbackUp brings lo up in the calling thread's network namespace.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}
