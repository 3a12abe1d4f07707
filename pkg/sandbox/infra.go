package sandbox

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

// InfraCommand is the hidden crid subcommand that runs a pod's infra
// process.
const InfraCommand = "infra"

// InfraIdentity is who the infra process becomes once set up: the pod's
// run_as_user, run_as_group and supplemental groups, with no capabilities,
// under the default seccomp profile when the pod asks for it.
type InfraIdentity struct {
	UID, GID       *int64
	Groups         []int64
	SeccompDefault bool
}

// RunInfra is a pod's infra process: PID 1 of the pod's shared PID
// namespace. It names the host, brings up lo when the pod has its own
// network, drops to the pod's identity, reaps every orphan the pod's
// containers leave (the job of a PID 1), and exits 0 on SIGTERM or SIGINT.
// It runs until then, whatever happens to crid.
func RunInfra(hostname string, ownNet bool, id InfraIdentity) int {
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			fmt.Fprintln(os.Stderr, "infra: set hostname:", err)
			return 1
		}
	}
	if ownNet {
		if err := loopbackUp(); err != nil {
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
func (id InfraIdentity) drop() error {
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
	if id.SeccompDefault {
		spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
		prof, err := profiles.GetDefaultProfile(spec)
		if err != nil {
			return err
		}
		if err := seccomp.Load(prof, true); err != nil {
			return err
		}
	}
	return nil
}
