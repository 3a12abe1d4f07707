package container

import (
	"context"
	"errors"
	"os/exec"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/reexec"
)

// The manager meets the rest of the node through these: the pods'
// monitors, which run containers; the mounts of their root filesystems;
// the image layers they stand on; their cgroups; the commands of execs.
// Production wiring is MonitorBinary, Overlay, *image.Service,
// *cgroups.Hierarchy and ExecBinary; tests hand in fakes.

// Monitors reach the pods' monitors (crid-monitor, one per pod).
type Monitors interface {
	// Ensure returns the monitor listening in dir, starting one if none does.
	Ensure(ctx context.Context, dir string) (Monitor, error)
	// Connect returns the monitor in dir, which may be gone.
	Connect(dir string) Monitor
}

// Monitor runs a pod's containers and records their exits in their
// bundles (monitor.ExitFile).
type Monitor interface {
	Alive(ctx context.Context) bool
	Start(ctx context.Context, req monitor.Request) (pid int, err error)
	// Pid is a running container's; errdefs.ErrNotFound if it runs not.
	Pid(ctx context.Context, id string) (int, error)
	Kill(ctx context.Context, id string, sig syscall.Signal) error
	Reopen(ctx context.Context, id string) error
}

// RootFS mounts containers' root filesystems and image volumes.
type RootFS interface {
	// Mount stacks lowers, topmost first, with upper and work as the
	// writable layer (none: read-only); userns, when set, is the pinned
	// user namespace the mount is idmapped to.
	Mount(target string, lowers []string, upper, work, userns string) error
	// Unmount detaches target; one not mounted is not an error.
	Unmount(target string) error
}

// Layers are the image layers containers stand on. A container holds
// its layers from its first record to its removal, so no image removal
// or garbage collection frees them beneath it.
type Layers interface {
	LayerDirs(img *image.Image) []string
	Hold(owner string, chainIDs []string)
	Release(owner string)
}

// Cgroups makes containers' cgroups.
type Cgroups interface {
	Manager(path string) (cgroups.Manager, error)
}

// Execs make the commands that run a process inside a running container
// (exec, ExecSync, probes).
type Execs interface {
	// Command runs p with the container's seccomp filter: prog, its
	// compiled program, when there is one, else sc compiled.
	Command(pid int, cgroupJoin []string, p *specs.Process, sc *specs.LinuxSeccomp, prog []byte) (*exec.Cmd, error)
}

// ExecBinary runs execs from crid's sealed binary, through the nsenter
// constructor (pkg/oci/executor).
type ExecBinary struct{ Binary *reexec.Binary }

func (b ExecBinary) Command(pid int, cgroupJoin []string, p *specs.Process, sc *specs.LinuxSeccomp, prog []byte) (*exec.Cmd, error) {
	return executor.ExecCmd(b.Binary, pid, cgroupJoin, p, sc, prog)
}

// MonitorBinary runs crid-podmon from sealed binaries, telling it the
// host's cgroup mounts (cgroups.Mounts).
type MonitorBinary struct {
	Binaries     monitor.Binaries
	CgroupMounts string
}

func (b MonitorBinary) Ensure(ctx context.Context, dir string) (Monitor, error) {
	return monitor.Ensure(ctx, b.Binaries, dir, b.CgroupMounts)
}
func (MonitorBinary) Connect(dir string) Monitor { return monitor.Connect(dir) }

// Overlay mounts roots with overlayfs.
type Overlay struct{}

func (Overlay) Mount(target string, lowers []string, upper, work, userns string) error {
	if userns != "" {
		return image.MountOverlayIDMapped(target, lowers, upper, work, userns)
	}
	return image.MountOverlay(target, lowers, upper, work)
}

func (Overlay) Unmount(target string) error {
	err := unix.Unmount(target, unix.MNT_DETACH)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
