// Package executor runs an OCI runtime-spec configuration: crid's own
// replacement for runc. It knows nothing of the CRI.
//
// Start (in crid) joins the namespaces the spec names on a locked thread
// of its own, then starts the container's init (crid's binary from a
// sealed copy, see pkg/reexec) with clone flags for the namespaces the
// spec makes new, so the child is born in the right namespaces: a Go
// process cannot join a mount or user namespace once it has threads, and
// need not here. The init reads the spec, waits until Start has put it in
// its cgroup, builds the root filesystem in its new mount namespace,
// drops privileges and execs the process. A setup error comes back over
// the sync socket; a successful exec closes it (close-on-exec).
package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/reexec"
)

// InitCommand is the hidden crid subcommand of a container's init.
const InitCommand = "init"

// Stdio are the container process's standard streams.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Process is a started container process.
type Process struct {
	Pid int
	// Console is the master of the process's terminal, when the spec
	// asked for one; the caller owns it.
	Console *os.File
	cmd     *exec.Cmd
}

// Wait waits for the process to exit and returns its wait status.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	err := p.cmd.Wait()
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		err = nil
	}
	return ws, err
}

// Release lets go of the process without waiting for it: for a caller
// that reaps its children itself (the monitor, as subreaper).
func (p *Process) Release() error { return p.cmd.Process.Release() }

// Options for Start.
type Options struct {
	// Place puts the init into the container's cgroup before it runs
	// anything of the container's.
	Place func(pid int) error
}

var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
}

var nsSetns = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
}

// Start runs the spec's process and returns once it has exec'd, or with
// the init's error when setup failed (the init is gone then).
func Start(bin *reexec.Binary, spec *specs.Spec, stdio Stdio, opts Options) (*Process, error) {
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, errors.New("spec has no process")
	}
	if spec.Linux == nil || spec.Root == nil {
		return nil, errors.New("spec has no linux section or root")
	}
	var clone uintptr
	var join []specs.LinuxNamespace
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.CgroupNamespace && ns.Path == "" {
			// Made by the init once it is in the container's cgroup
			// (see setup): a cgroup namespace is rooted where its maker
			// stands, and at clone that is the caller's cgroup.
			continue
		}
		if ns.Path == "" {
			clone |= nsFlags[ns.Type]
			continue
		}
		if ns.Type == specs.MountNamespace || ns.Type == specs.UserNamespace {
			return nil, fmt.Errorf("joining a %s namespace by path is not supported", ns.Type)
		}
		join = append(join, ns)
	}
	if clone&unix.CLONE_NEWNS == 0 {
		return nil, errors.New("a container needs a mount namespace of its own")
	}
	specData, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "init-sync")
	child := os.NewFile(uintptr(fds[1]), "init-sync-child")
	defer parent.Close()

	cmd := bin.Command(InitCommand)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	cmd.ExtraFiles = []*os.File{child} // fd 3 in the init
	cmd.Env = []string{}               // the container's environment comes from the spec
	// A session of its own: the container's signals and terminal are
	// never crid's (with a terminal, the init makes it the controlling
	// one of this session).
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: clone, Setsid: true}

	if err := startIn(cmd, join); err != nil {
		child.Close()
		return nil, err
	}
	child.Close()
	p := &Process{Pid: cmd.Process.Pid, cmd: cmd}
	fail := func(err error) (*Process, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	if opts.Place != nil {
		if err := opts.Place(p.Pid); err != nil {
			return fail(fmt.Errorf("place container init in its cgroup: %w", err))
		}
	}
	if _, err := parent.Write(append(specData, '\n')); err != nil {
		return fail(fmt.Errorf("send spec to container init: %w", err))
	}
	var head []byte
	if spec.Process.Terminal {
		if p.Console, head, err = recvConsole(parent); err != nil {
			return fail(err)
		}
	}
	// Whatever comes back is a setup error; EOF means the exec happened.
	msg, err := io.ReadAll(parent)
	if err == nil && len(head)+len(msg) > 0 {
		err = fmt.Errorf("container init: %s", append(head, msg...))
	} else if err != nil {
		err = fmt.Errorf("read from container init: %w", err)
	}
	if err != nil {
		if p.Console != nil {
			p.Console.Close()
		}
		return fail(err)
	}
	return p, nil
}

// startIn starts cmd from a thread that has joined the given namespaces,
// so that the child is born in them (for a PID namespace, setns changes
// only the namespace of the children that thread makes). The thread is
// never handed back to the Go scheduler: it dies with its goroutine.
func startIn(cmd *exec.Cmd, join []specs.LinuxNamespace) error {
	if len(join) == 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		for _, ns := range join {
			f, err := os.Open(ns.Path)
			if err != nil {
				errc <- fmt.Errorf("open %s namespace %s: %w", ns.Type, ns.Path, err)
				return
			}
			err = unix.Setns(int(f.Fd()), nsSetns[ns.Type])
			f.Close()
			if err != nil {
				errc <- fmt.Errorf("join %s namespace %s: %w", ns.Type, ns.Path, err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	return <-errc
}
