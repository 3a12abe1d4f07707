// Package infra is a pod's infra process: PID 1 of a pod's shared PID
// namespace. It is linked into the small crid-monitor binary, not into
// crid, so that the process each such pod keeps costs little memory.
package infra

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/oci/seccomp"
)

// Command is the hidden subcommand of crid-monitor that runs a pod's
// infra process.
const Command = "infra"

// Identity is who the infra process becomes once set up: the pod's
// run_as_user, run_as_group and supplemental groups, with no capabilities,
// under Seccomp when the pod asks for the default profile: Profile's
// program, compiled by crid (compiled here, by libseccomp, it took 22 ms
// of each such pod's start).
type Identity struct {
	UID, GID *int64
	Groups   []int64
	Seccomp  []byte
}

// Profile is the seccomp profile of an infra process under the runtime's
// default: the default profile of a process with no capabilities.
func Profile() (*specs.LinuxSeccomp, error) {
	return profiles.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
}

// Run is a pod's infra process: PID 1 of the pod's shared PID
// namespace. It names the host, brings up lo when the pod has its own
// network, drops to the pod's identity, reaps every orphan the pod's
// containers leave (the job of a PID 1), and exits 0 on SIGTERM or SIGINT.
// It runs until then, whatever happens to crid.
func Run(hostname string, ownNet bool, id Identity) int {
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			fmt.Fprintln(os.Stderr, "infra: set hostname:", err)
			return 1
		}
	}
	if ownNet {
		if err := LoopbackUp(); err != nil {
			fmt.Fprintln(os.Stderr, "infra:", err)
			return 1
		}
	}
	if err := id.drop(); err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		return 1
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	// Tell the parent the namespaces are ready to pin.
	os.Stdout.WriteString("ready\n")
	os.Stdout.Close()
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return 0
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}

// drop takes on the identity: an empty bounding set (while CAP_SETPCAP is
// still held), groups, gid, uid, then no capabilities at all (a PID 1
// needs none to reap), then seccomp.
func (id Identity) drop() error {
	for c := 0; c <= 63; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	groups := make([]int, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if id.GID != nil {
		if err := syscall.Setgid(int(*id.GID)); err != nil {
			return fmt.Errorf("setgid: %w", err)
		}
	}
	if id.UID != nil {
		if err := syscall.Setuid(int(*id.UID)); err != nil {
			return fmt.Errorf("setuid: %w", err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if len(id.Seccomp) > 0 {
		if err := seccomp.LoadProgram(id.Seccomp, false); err != nil {
			return err
		}
	}
	return nil
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
