package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/infra"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/oci/nsenter"
	"github.com/crid-dev/crid/pkg/proc"
	"github.com/crid-dev/crid/pkg/reexec"
	"github.com/crid-dev/crid/pkg/trash"
)

// The manager meets the rest of the node through these: the pod network,
// the pods' monitors, the cgroups, and the kernel's namespaces and
// mounts. Production wiring is *cni.Manager, MonitorBinary,
// *cgroups.Hierarchy and Host; tests hand in fakes.

// Network attaches pods to the pod network.
type Network interface {
	Attach(ctx context.Context, p cni.Pod) (*cni.Attachment, error)
	Detach(ctx context.Context, p cni.Pod) error
	Check(ctx context.Context, p cni.Pod) error
	// GC drops what the network holds for pods other than keep.
	GC(ctx context.Context, keep []string) error
}

// Monitors start and end the pods' monitors.
type Monitors interface {
	Ensure(ctx context.Context, dir string) error
	// Shutdown ends the monitor in dir; none there is not an error.
	Shutdown(ctx context.Context, dir string) error
}

// Cgroups makes pods' cgroups.
type Cgroups interface {
	Manager(path string) (cgroups.Manager, error)
}

// Kernel makes what a pod is in the kernel beside its cgroup: namespaces
// (and the infra process that holds a shared PID namespace), /dev/shm,
// sysctls. Each undo is safe to repeat.
type Kernel interface {
	MakeNamespaces(ctx context.Context, s *Sandbox) error
	Unpin(ns Namespaces) error
	// Holds says whether a ready pod's namespaces and infra process
	// survived while crid was away.
	Holds(s *Sandbox) bool
	KillInfra(ctx context.Context, s *Sandbox) error
	MountShm(dir string, size int64) error
	UnmountShm(dir string) error
	ApplySysctls(s *Sandbox) error
	// RemoveDir removes a pod's directory and whatever is mounted under
	// it; the deletion may finish after it returns.
	RemoveDir(dir string) error
}

// MonitorBinary runs crid-podmon from sealed binaries, counting the
// monitors it starts in Metrics (which may be nil) and telling them the
// host's cgroup mounts (cgroups.Mounts).
type MonitorBinary struct {
	Binaries     monitor.Binaries
	Metrics      *metrics.Metrics
	CgroupMounts string
}

func (b MonitorBinary) Ensure(ctx context.Context, dir string) error {
	if monitor.Connect(dir).Alive(ctx) {
		return nil
	}
	if _, err := monitor.Ensure(ctx, b.Binaries, dir, b.CgroupMounts); err != nil {
		return err
	}
	b.Metrics.MonitorStarted()
	return nil
}

func (MonitorBinary) Shutdown(ctx context.Context, dir string) error {
	if mon := monitor.Connect(dir); mon.Alive(ctx) {
		return mon.Shutdown(ctx)
	}
	return nil
}

// Host is the kernel as crid finds it: infra processes run from Binary,
// placed in cgroups of Cgroups, under the seccomp program InfraSeccomp
// gives (crid's holds infra.Program once; nil: compiled at each start);
// removed pods' directories go to Trash (nil: deleted at once).
type Host struct {
	Binary       *reexec.Binary
	Cgroups      Cgroups
	InfraSeccomp func() ([]byte, error)
	Trash        *trash.Bin
}

func (Host) Unpin(ns Namespaces) error             { return unpin(ns) }
func (Host) MountShm(dir string, size int64) error { return mountShm(dir, size) }
func (Host) UnmountShm(dir string) error           { return unmountShm(dir) }
func (Host) ApplySysctls(s *Sandbox) error         { return applySysctls(s) }
func (k Host) RemoveDir(dir string) error {
	if k.Trash == nil {
		return trash.RemoveAll(dir)
	}
	return k.Trash.Discard(dir)
}

func (Host) Holds(s *Sandbox) bool {
	return (s.NS.Net == "" || IsPinned(s.NS.Net)) && (!s.Spec.SharedPID || s.infraAlive())
}

// infraCgroup is where a pod's infra process runs: a child of the pod's
// cgroup, since on cgroup v2 a cgroup with children may hold no process.
func (s *Sandbox) infraCgroup() string {
	return filepath.Join(s.Cgroup, "crid-infra-"+s.ID[:12])
}

// MakeNamespaces makes the pod's namespaces and pins them under its
// directory, with the infra process of a shared PID namespace (born in
// its cgroup), recording them in s.
func (k Host) MakeNamespaces(ctx context.Context, s *Sandbox) error {
	kinds := nsKinds{net: !s.Spec.HostNetwork, ipc: !s.Spec.HostIPC, uts: !s.Spec.HostNetwork}
	dir := filepath.Join(s.Dir, "ns")
	userns := s.Spec.UserNS
	if !s.Spec.SharedPID && userns == nil {
		ns, err := pinThread(dir, kinds, s.Spec.Hostname)
		s.NS = ns
		return err
	}
	// A process makes the namespaces: the infra process of a shared PID
	// namespace, which stays; or, for a pod in a user namespace (which no
	// thread of crid's can make), the same program for as long as it
	// takes to pin them. Made by one clone, the pod's namespaces belong to
	// its user namespace, so its containers' root is theirs.
	flags := uintptr(0)
	if s.Spec.SharedPID {
		flags |= syscall.CLONE_NEWPID
	}
	if kinds.net {
		flags |= syscall.CLONE_NEWNET
	}
	if kinds.ipc {
		flags |= syscall.CLONE_NEWIPC
	}
	if kinds.uts {
		flags |= syscall.CLONE_NEWUTS
	}
	hostname := ""
	if kinds.uts {
		hostname = s.Spec.Hostname
	}
	args := []string{infra.Command, "--hostname", hostname}
	if kinds.net {
		args = append(args, "--net")
	}
	if u := s.Spec.RunAsUser; u != nil {
		args = append(args, "--uid", strconv.FormatInt(*u, 10))
	}
	if g := s.Spec.RunAsGroup; g != nil {
		args = append(args, "--gid", strconv.FormatInt(*g, 10))
	}
	for _, g := range s.Spec.SupplementalGroups {
		args = append(args, "--group", strconv.FormatInt(g, 10))
	}
	// The infra process is the pod's PID 1: the containers reach its root
	// and working directory through /proc/1/root and /proc/1/cwd, and its
	// environment through /proc/1/environ. Until 2026-12-03 they were
	// crid's (the host's /: a container read and wrote the host's files
	// through them). It gets an empty, read-only tmpfs attached nowhere,
	// where .. leads nowhere else, and an environment of its own.
	root, err := emptyRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	extra := []*os.File{root}
	args = append(args, "--root-fd", "3")
	if s.Spec.SeccompDefault {
		prog, err := k.infraSeccomp()
		if err != nil {
			return err
		}
		defer prog.Close()
		extra = append(extra, prog)
		args = append(args, "--seccomp-fd", "4")
	}
	cmd := k.Binary.Command(args...)
	cmd.ExtraFiles = extra
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Setsid: true}
	// The infra process that stays is born in its cgroup (v2) or puts
	// itself there first thing (v1): moving it in later costs the kernel
	// a synchronize_rcu. One in a new user namespace cannot write the
	// host's cgroup files: it is moved.
	var infraCg cgroups.Manager
	moveInfra := false
	if s.Spec.SharedPID {
		var err error
		if infraCg, err = k.Cgroups.Manager(s.infraCgroup()); err != nil {
			return err
		}
		if err := infraCg.Create(nil); err != nil {
			return err
		}
		if dir, err := infraCg.CloneInto(); err == nil {
			defer dir.Close()
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
		} else if userns == nil {
			cmd.Env = []string{nsenter.CgroupJoinEnv + "=" + strings.Join(infraCg.JoinFiles(), ":")}
		} else {
			moveInfra = true
		}
	}
	if userns != nil {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = sysMappings(userns.UIDs)
		cmd.SysProcAttr.GidMappings = sysMappings(userns.GIDs)
		// The pod's processes set their supplemental groups.
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		// The host's root is not mapped in the namespace: unless the
		// child becomes the namespace's root before exec, exec takes its
		// capabilities away.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	// No stdin or stderr: the infra process outlives crid and must hold
	// none of crid's files (its log pipe, a terminal) open past it.
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start infra process: %w", err)
	}
	// The infra process outlives crid: its exit is collected by whoever
	// reaps it then, and by this goroutine while crid runs.
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	pid := cmd.Process.Pid
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		return fmt.Errorf("infra process did not start: %q %v", line, err)
	}
	if !s.Spec.SharedPID {
		ns, err := pinProcess(dir, kinds, pid, false, true)
		s.NS = ns
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		return err
	}
	s.InfraPID = pid
	s.InfraStart, _ = proc.StartTicks(s.InfraPID)
	if moveInfra {
		if err := infraCg.Add(s.InfraPID); err != nil {
			return err
		}
	}
	ns, err := pinProcess(dir, kinds, s.InfraPID, true, userns != nil)
	s.NS = ns
	return err
}

// emptyRoot is a new tmpfs, empty, read-only and attached nowhere (its
// root has no parent for .. to reach), as a mount descriptor: an infra
// process's root and working directory.
func emptyRoot() (*os.File, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("an empty root for the infra process: fsopen: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "mode", "0555"); err != nil {
		return nil, fmt.Errorf("an empty root for the infra process: %w", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, fmt.Errorf("an empty root for the infra process: %w", err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return nil, fmt.Errorf("an empty root for the infra process: fsmount: %w", err)
	}
	return os.NewFile(uintptr(fd), "crid-infra-root"), nil
}

// infraSeccomp is the infra process's seccomp program in a memfd, for
// the process to read as its fd 4.
func (k Host) infraSeccomp() (*os.File, error) {
	program := k.InfraSeccomp
	if program == nil {
		program = infra.Program
	}
	prog, err := program()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("crid-infra-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for the infra process's seccomp program: %w", err)
	}
	f := os.NewFile(uintptr(fd), "crid-infra-seccomp")
	if _, err := f.Write(prog); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the infra process's seccomp program: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func sysMappings(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// KillInfra ends the infra process and waits until it is gone (or a
// zombie for its parent to collect), so the PID namespace is empty when
// Stop returns.
func (Host) KillInfra(ctx context.Context, s *Sandbox) error {
	if !s.infraAlive() {
		return nil
	}
	syscall.Kill(s.InfraPID, syscall.SIGKILL)
	for s.infraAlive() && !isZombie(s.InfraPID) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("infra process %d of sandbox %s did not exit: %w", s.InfraPID, s.ID, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
