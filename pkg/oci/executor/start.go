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
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/oci/nsenter"
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
	// forked: the process is the child of the init Start started, which
	// has exited (a new PID namespace in a user namespace); it is the
	// child of the caller only if the caller is a child subreaper.
	forked bool
}

// initConfig is what Start sends the init: the spec, and the descriptors
// of the mounts it prepared (by index in spec.Mounts). Start writes the
// spec as it came (initMessage); the init decodes all of it.
type initConfig struct {
	Spec     *specs.Spec `json:"spec"`
	RootFD   int         `json:"rootFd"` // a detached clone of the rootfs, made by Start
	MountFDs map[int]int `json:"mountFds,omitempty"`
	// SeccompProgram is spec's seccomp filter compiled, when the starter
	// had it (Config.SeccompProgram).
	SeccompProgram []byte `json:"seccompProgram,omitempty"`
	// CgroupMounts are the host's cgroup mountinfo lines
	// (Options.CgroupMounts), when the starter had them.
	CgroupMounts string `json:"cgroupMounts,omitempty"`
	// Bundle, from a Launch's starter (LaunchMessage), is where the init
	// reads the spec; it comes without Spec, RootFD or SeccompProgram.
	Bundle string `json:"bundle,omitempty"`
}

type initMessage struct {
	Spec           json.RawMessage `json:"spec"`
	RootFD         int             `json:"rootFd"`
	MountFDs       map[int]int     `json:"mountFds,omitempty"`
	SeccompProgram []byte          `json:"seccompProgram,omitempty"`
	CgroupMounts   string          `json:"cgroupMounts,omitempty"`
}

// Config is a container's runtime spec as Start reads it: the spec's JSON
// as written (config.json), and the few fields Start itself acts on. The
// init decodes the whole spec, in its own short-lived process. The
// long-lived monitor that starts a pod's containers decodes no more than
// this: decoding a whole spec once builds the JSON package's caches for
// every type in it, about 0.24 MB that each pod's monitor kept for life.
type Config struct {
	raw     []byte
	Process struct {
		Args        []string `json:"args"`
		Terminal    bool     `json:"terminal"`
		OOMScoreAdj *int     `json:"oomScoreAdj"`
	} `json:"process"`
	Root struct {
		Path string `json:"path"`
	} `json:"root"`
	Mounts []specs.Mount `json:"mounts"`
	Linux  struct {
		Namespaces  []specs.LinuxNamespace `json:"namespaces"`
		CgroupsPath string                 `json:"cgroupsPath"`
	} `json:"linux"`
	// SeccompProgram is the spec's seccomp filter as seccomp.Compile made
	// it, when the caller has it (SeccompProgramFile in the bundle): the
	// init loads it instead of compiling the profile, about 7 ms of every
	// start. It must be the compilation of this spec's linux.seccomp.
	SeccompProgram []byte `json:"-"`
}

// SeccompProgramFile is where a bundle keeps its spec's compiled seccomp
// filter, beside config.json.
const SeccompProgramFile = "seccomp.bpf"

// ParseConfig reads a runtime spec's JSON as Start needs it.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{raw: data}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Start runs spec's process: StartConfig for a spec in hand.
func Start(bin *reexec.Binary, spec *specs.Spec, stdio Stdio, opts Options) (*Process, error) {
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, errors.New("spec has no process")
	}
	if spec.Linux == nil || spec.Root == nil {
		return nil, errors.New("spec has no linux section or root")
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return StartConfig(bin, cfg, stdio, opts)
}

// Wait waits for the process to exit and returns its wait status.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	if p.forked {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(p.Pid, &ws, 0, nil)
		// The init was reaped by Start; this only waits for exec's
		// copying of non-file stdio, which ends with the process.
		p.cmd.Wait()
		return ws, err
	}
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
func (p *Process) Release() error {
	if p.forked {
		return nil
	}
	return p.cmd.Process.Release()
}

// Options for Start.
type Options struct {
	// Place puts the init into the container's cgroup before it runs
	// anything of the container's.
	Place func(pid int) error
	// CgroupDir, when set, is the container's cgroup (v2) opened for
	// CLONE_INTO_CGROUP: the init is born in it and Place is not called.
	// Moving a process into a cgroup costs the kernel a synchronize_rcu;
	// being born there costs nothing.
	CgroupDir *os.File
	// CgroupJoin, when set, are the container's cgroup membership files
	// (cgroups.Manager.JoinFiles): the init puts itself in them first of
	// all, while it has one thread, which on v1 costs no synchronize_rcu;
	// Place is not called.
	CgroupJoin []string
	// CgroupMounts are the host's cgroup mounts (cgroups.Mounts): the
	// init mounts the container's cgroup v1 file system from them
	// instead of reading the host's whole mountinfo.
	CgroupMounts string
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

// StartConfig runs the spec's process and returns once it has exec'd, or
// with the init's error when setup failed (the init is gone then).
//
// A spec that joins a user namespace (a pod's, by path) gets its mount
// and PID namespaces made inside it by the nsenter constructor, so that
// the container's root owns them; its other namespaces must be joined
// ones, which belong to that user namespace already. Its bind mounts that
// carry ID mappings are idmapped here, by the host's root, which alone
// may, and handed to the init as descriptors. Start's caller must then be
// a child subreaper when the spec makes a PID namespace: the init forks
// into it and the forked process is the container's.
func StartConfig(bin *reexec.Binary, spec *Config, stdio Stdio, opts Options) (*Process, error) {
	if len(spec.Process.Args) == 0 {
		return nil, errors.New("spec has no process")
	}
	if spec.Root.Path == "" {
		return nil, errors.New("spec has no root")
	}
	ns, err := planNamespaces(spec)
	if err != nil {
		return nil, err
	}
	cmd := initCommand(bin, ns, opts)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	h, err := handOver(cmd, spec, ns.userns, opts.CgroupMounts)
	if err != nil {
		return nil, err
	}
	defer h.close()
	if err := startIn(cmd, ns.join); err != nil {
		return nil, err
	}
	h.child.Close()
	p := &Process{Pid: cmd.Process.Pid, cmd: cmd}
	fail := func(err error) (*Process, error) {
		cmd.Process.Kill()
		if p.forked {
			syscall.Kill(p.Pid, syscall.SIGKILL)
			syscall.Wait4(p.Pid, nil, 0, nil)
		}
		cmd.Wait()
		return nil, err
	}
	if ns.newPIDInUserns {
		// The init forked into its PID namespace and exited: its child
		// is the container's process.
		pid, err := readForkedPid(h.parent)
		// Not cmd.Wait: that waits for stdio copying too, which lasts as
		// long as the container.
		cmd.Process.Wait()
		if err != nil {
			return nil, err
		}
		p.Pid, p.forked = pid, true
	}
	if err := placeInit(p.Pid, spec, opts); err != nil {
		return fail(err)
	}
	if err := awaitExec(p, h.parent, h.msg, spec.Process.Terminal); err != nil {
		return fail(err)
	}
	return p, nil
}

// namespaces is what the init's clone makes and what it joins.
type namespaces struct {
	clone uintptr                // made by clone
	join  []specs.LinuxNamespace // joined by path before the clone
	// userns is the pod's user namespace, joined by the nsenter
	// constructor, which then makes the mount (and PID) namespaces in it.
	userns         string
	newPIDInUserns bool
}

// planNamespaces reads the spec's namespaces: which to make, which to
// join. A cgroup namespace is made later, by the init, once it stands in
// the container's cgroup (a cgroup namespace is rooted where its maker
// stands, and at clone that is the caller's cgroup).
func planNamespaces(spec *Config) (namespaces, error) {
	var ns namespaces
	for _, n := range spec.Linux.Namespaces {
		switch {
		case n.Type == specs.CgroupNamespace && n.Path == "":
		case n.Type == specs.UserNamespace:
			if n.Path == "" {
				return ns, errors.New("a user namespace of the container's own is not supported: join the pod's, by path")
			}
			ns.userns = n.Path
		case n.Path == "":
			ns.clone |= nsFlags[n.Type]
		case n.Type == specs.MountNamespace:
			return ns, fmt.Errorf("joining a %s namespace by path is not supported", n.Type)
		default:
			ns.join = append(ns.join, n)
		}
	}
	if ns.clone&unix.CLONE_NEWNS == 0 {
		return ns, errors.New("a container needs a mount namespace of its own")
	}
	if ns.userns != "" {
		// Namespaces made in the user namespace must belong to it: only
		// the mount and PID namespaces are made there (by the
		// constructor); the rest are the pod's, which do already.
		if ns.clone&^(unix.CLONE_NEWNS|unix.CLONE_NEWPID) != 0 {
			return ns, errors.New("in a user namespace, the network, IPC and UTS namespaces must be the pod's (joined by path)")
		}
		ns.newPIDInUserns = ns.clone&unix.CLONE_NEWPID != 0
		ns.clone = 0
	}
	return ns, nil
}

// initCommand is the init's command: an empty environment (the
// container's comes from the spec), the namespaces to make, and where it
// is born or puts itself in the container's cgroup.
func initCommand(bin *reexec.Binary, ns namespaces, opts Options) *exec.Cmd {
	cmd := bin.Command(InitCommand)
	cmd.Env = []string{}
	if ns.userns != "" {
		cmd.Env = append(cmd.Env, nsenter.InitUsernsEnv+"="+ns.userns)
		if ns.newPIDInUserns {
			cmd.Env = append(cmd.Env, nsenter.InitNewPIDEnv+"=1")
		}
	}
	// A session of its own: the container's signals and terminal are
	// never crid's (with a terminal, the init makes it the controlling
	// one of this session).
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: ns.clone, Setsid: true}
	switch {
	case opts.CgroupDir != nil:
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(opts.CgroupDir.Fd())
	case len(opts.CgroupJoin) > 0:
		cmd.Env = append(cmd.Env, nsenter.CgroupJoinEnv+"="+strings.Join(opts.CgroupJoin, ":"))
	}
	return cmd
}

// handoff is what the init is handed at start: the sync socket (fd 3),
// the root filesystem's detached clone (fd 4), the prepared mount trees
// (fds 5...), and the message naming them with the spec.
type handoff struct {
	parent, child *os.File
	files         []*os.File // closed once the init holds its copies
	msg           []byte
}

func (h *handoff) close() {
	h.parent.Close()
	h.child.Close()
	for _, f := range h.files {
		f.Close()
	}
}

// handOver opens what the init is handed and sets it in cmd.
func handOver(cmd *exec.Cmd, spec *Config, userns, cgroupMounts string) (_ *handoff, err error) {
	h := &handoff{}
	defer func() {
		if err != nil {
			for _, f := range h.files {
				f.Close()
			}
		}
	}()
	rootTree, err := cloneRootfs(spec.Root.Path)
	if err != nil {
		return nil, err
	}
	rootDir := os.NewFile(uintptr(rootTree), "rootfs")
	h.files = append(h.files, rootDir)
	trees, err := preparedTrees(spec, userns)
	if err != nil {
		return nil, err
	}
	for _, t := range trees {
		h.files = append(h.files, t)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	// Non-blocking, the starter's end is read through the poller: a read
	// blocked in the kernel for the init's set-up would hold a thread,
	// and the monitor would keep one more for the rest of its life.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, err
	}
	h.parent = os.NewFile(uintptr(fds[0]), "init-sync")
	h.child = os.NewFile(uintptr(fds[1]), "init-sync-child")
	msg := initMessage{Spec: spec.raw, RootFD: 4, SeccompProgram: spec.SeccompProgram, CgroupMounts: cgroupMounts}
	cmd.ExtraFiles = []*os.File{h.child, rootDir} // fds 3 and 4 in the init; the trees follow
	for i, t := range trees {
		if msg.MountFDs == nil {
			msg.MountFDs = map[int]int{}
		}
		msg.MountFDs[i] = 3 + len(cmd.ExtraFiles)
		cmd.ExtraFiles = append(cmd.ExtraFiles, t)
	}
	if h.msg, err = json.Marshal(msg); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// placeInit puts the init in its cgroup (unless it was born there or
// joins it itself) and sets its oom_score_adj, before it runs anything of
// the container's. The score is set from here, by the host's root: a
// process in a user namespace may not lower its own.
func placeInit(pid int, spec *Config, opts Options) error {
	if opts.Place != nil && opts.CgroupDir == nil && len(opts.CgroupJoin) == 0 {
		if err := opts.Place(pid); err != nil {
			return fmt.Errorf("place container init in its cgroup: %w", err)
		}
	}
	if adj := spec.Process.OOMScoreAdj; adj != nil {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(*adj)), 0); err != nil {
			return fmt.Errorf("oom_score_adj %d: %w", *adj, err)
		}
	}
	return nil
}

// awaitExec sends the init its spec and waits for its exec: EOF on the
// sync socket means the exec happened (it is close-on-exec); anything
// read is the init's setup error. A terminal's master comes first.
func awaitExec(p *Process, parent *os.File, msg []byte, terminal bool) error {
	if _, err := parent.Write(append(msg, '\n')); err != nil {
		// An init that failed in its constructors has gone before it read
		// its spec: its message says why.
		if m, _ := io.ReadAll(parent); len(m) > 0 {
			return initError(m)
		}
		return fmt.Errorf("send spec to container init: %w", err)
	}
	var head []byte
	if terminal {
		var err error
		if p.Console, head, err = recvConsole(parent); err != nil {
			return err
		}
	}
	m, err := io.ReadAll(parent)
	switch {
	case len(head)+len(m) > 0:
		// A reset after it is the init exiting before it read its spec
		// (a constructor failed): the message says why.
		err = initError(append(head, m...))
	case err != nil:
		err = fmt.Errorf("read from container init: %w", err)
	}
	if err != nil && p.Console != nil {
		p.Console.Close()
		p.Console = nil
	}
	return err
}

// readForkedPid reads the "pid N" line of the nsenter constructor, byte
// by byte so nothing after it is taken; anything else is its error.
func readForkedPid(r io.Reader) (int, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 256 {
		n, err := r.Read(b)
		if n == 0 || err != nil {
			break
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	rest, ok := strings.CutPrefix(string(line), "pid ")
	if !ok {
		return 0, fmt.Errorf("container init: %s", line)
	}
	pid, err := strconv.Atoi(rest)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("container init: bad pid line %q", line)
	}
	return pid, nil
}

// preparedTrees are the spec's bind mounts Start makes for the init, by
// index in spec.Mounts: in a user namespace every bind (the container's
// root may not search the host's directories to reach a source), idmapped
// through the pod's user namespace when it carries ID mappings.
func preparedTrees(spec *Config, userns string) (map[int]*os.File, error) {
	trees := map[int]*os.File{}
	if userns == "" {
		for _, m := range spec.Mounts {
			if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
				return nil, fmt.Errorf("mount %s has ID mappings but the container has no user namespace", m.Destination)
			}
		}
		return trees, nil
	}
	ns, err := os.Open(userns)
	if err != nil {
		return nil, fmt.Errorf("open user namespace %s: %w", userns, err)
	}
	defer ns.Close()
	for i, m := range spec.Mounts {
		if !isBindMount(m, parseOptions(m.Options)) {
			continue
		}
		idmap := -1
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			idmap = int(ns.Fd())
		}
		fd, err := bindTree(m, idmap)
		if err != nil {
			for _, t := range trees {
				t.Close()
			}
			return nil, err
		}
		trees[i] = os.NewFile(uintptr(fd), "mount "+m.Destination)
	}
	return trees, nil
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
