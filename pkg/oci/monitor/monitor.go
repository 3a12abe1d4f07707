// Package monitor is the process that watches over a pod's containers
// while crid may come and go: one per pod, started by crid from its own
// binary (`crid monitor DIR`), in a session of its own and holding none of
// crid's files. It is the parent, and the child subreaper, of the pod's
// container processes: it starts them through the executor, copies their
// output into their logs in the CRI format, reopens logs on request, and
// records each exit atomically in the container's bundle, so a crid that
// was killed finds every exit when it comes back.
//
// One monitor per pod rather than per container (conmon's choice) keeps
// the cost of a pod to one small process however many containers it has;
// it is asked over a unix socket in the pod's run dir (a path, never an
// abstract socket: CVE-2020-15257).
package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/reexec"
)

// Command is the hidden crid subcommand of a pod's monitor.
const Command = "monitor"

// SocketName is the monitor's socket in its directory.
const SocketName = "monitor.sock"

// ExitFile is where a container's exit is recorded in its bundle.
const ExitFile = "exit.json"

// Request is one call to the monitor.
type Request struct {
	Op     string `json:"op"` // start, kill, reopen, resize, attach, shutdown
	ID     string `json:"id,omitempty"`
	Bundle string `json:"bundle,omitempty"` // holds config.json; exit.json is written there
	Log    string `json:"log,omitempty"`
	Signal int    `json:"signal,omitempty"`
	// Stdin gives the container a stdin pipe the monitor holds, for
	// attach; StdinOnce closes it when the first attached client leaves.
	Stdin     bool `json:"stdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"`
	// Width and Height are a terminal's new size, for resize.
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// Response answers a Request.
type Response struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	// Kind is the errdefs kind of Error, so a bad spec the init refused
	// reaches the kubelet as InvalidArgument, not Unknown.
	Kind string `json:"kind,omitempty"`
}

// Exit is a container's end.
type Exit struct {
	Pid        int       `json:"pid"`
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
	// OOM says what filled the memory, when OOMKilled.
	OOM *OOMReport `json:"oom,omitempty"`
}

type container struct {
	id, bundle string
	pid        int
	log        *LogWriter
	cgroup     cgroups.Manager
	oomBefore  uint64
	oom        *OOMWatch
	copying    sync.WaitGroup

	stdinOnce bool
	console   *os.File // the terminal's master, for a container with one
	mu        sync.Mutex
	// stdin is where attached input goes, when the container takes it:
	// its stdin pipe, or its terminal.
	stdin   *os.File
	clients map[net.Conn]bool // attached: they get the output as frames
}

// closeStdin ends the container's input: the pipe is closed (the process
// reads EOF); a terminal stays open for its output and just takes no more
// input, as containerd's shim does. c.mu is held.
func (c *container) closeStdin() {
	if c.stdin != nil && c.stdin != c.console {
		c.stdin.Close()
	}
	c.stdin = nil
}

// Frames an attached client receives: a stream byte, a big-endian length,
// the bytes.
const (
	FrameStdout byte = 1
	FrameStderr byte = 2
)

// fanout sends what a stream carries to every attached client; a client
// that cannot keep up within a second is dropped, never the container.
type fanout struct {
	c      *container
	stream byte
}

func (f fanout) Write(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	hdr := []byte{f.stream, byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}
	for conn := range f.c.clients {
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(append(hdr, p...)); err != nil {
			conn.Close()
			delete(f.c.clients, conn)
		}
	}
	return len(p), nil
}

type monitor struct {
	dir string
	// cgroupMounts are the host's cgroup mounts (cgroups.Mounts), for
	// the inits.
	cgroupMounts string
	bin          *reexec.Binary
	cg           *cgroups.Hierarchy
	mu           sync.Mutex
	byPid        map[int]*container
	byID         map[string]*container
	closing      bool
}

// Run is the monitor's main: it serves dir's socket until asked to shut
// down with no container left running.
func Run(dir string) int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "monitor: subreaper:", err)
		return 1
	}
	mounts := os.Getenv(cgroups.MountsEnv)
	if mounts == "" {
		var err error
		if mounts, err = cgroups.Mounts(); err != nil {
			fmt.Fprintln(os.Stderr, "monitor:", err)
			return 1
		}
	}
	cg, err := cgroups.DiscoverFrom(mounts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitor:", err)
		return 1
	}
	m := &monitor{dir: dir, bin: reexec.Self(), cg: cg, cgroupMounts: mounts, byPid: map[int]*container{}, byID: map[string]*container{}}
	// Socket paths are limited to 107 bytes and a pod's dir under the run
	// root is longer: listen relative to the dir, and let clients dial
	// through a descriptor of it (see dial).
	if err := os.Chdir(dir); err != nil {
		fmt.Fprintln(os.Stderr, "monitor:", err)
		return 1
	}
	sock := SocketName
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitor:", err)
		return 1
	}
	os.Chmod(sock, 0o600)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, syscall.SIGCHLD)
	go m.reap(sigs)
	// Tell the starter the socket is ready.
	os.Stdout.WriteString("ready\n")
	os.Stdout.Close()
	for {
		conn, err := l.Accept()
		if err != nil {
			return 0
		}
		if m.serve(conn) {
			l.Close()
			os.Remove(sock)
			return 0
		}
	}
}

// attach makes conn a client of the container's streams: output frames go
// out on it, and what comes in on it is the container's stdin. The
// connection's goroutine is owned by the monitor and ends with it.
func (m *monitor) attach(conn net.Conn, id string) {
	m.mu.Lock()
	c := m.byID[id]
	m.mu.Unlock()
	if c == nil {
		json.NewEncoder(conn).Encode(Response{Error: "container " + id + " is not running"})
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	json.NewEncoder(conn).Encode(Response{Pid: c.pid})
	c.mu.Lock()
	c.clients[conn] = true
	stdin := c.stdin
	c.mu.Unlock()
	go func() {
		if stdin != nil {
			io.Copy(stdin, conn)
			if c.stdinOnce {
				c.mu.Lock()
				c.closeStdin()
				c.mu.Unlock()
			}
		} else {
			io.Copy(io.Discard, conn)
		}
		c.mu.Lock()
		delete(c.clients, conn)
		c.mu.Unlock()
		conn.Close()
	}()
}

// serve answers one request; it returns true when the monitor should end.
func (m *monitor) serve(conn net.Conn) bool {
	closeConn := true
	defer func() {
		if closeConn {
			conn.Close()
		}
	}()
	conn.SetDeadline(time.Now().Add(time.Minute))
	var req Request
	dec := json.NewDecoder(conn)
	if err := dec.Decode(&req); err != nil {
		return false
	}
	if req.Op == "attach" {
		if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 {
			// The client sent stdin before the answer: not in this protocol.
			conn.Close()
			return false
		}
		closeConn = false
		m.attach(conn, req.ID)
		return false
	}
	var resp Response
	end := false
	switch req.Op {
	case "start":
		pid, err := m.start(req)
		resp.Pid = pid
		if err != nil {
			resp.Error, resp.Kind = err.Error(), errdefs.Kind(err)
		}
	case "pid":
		m.mu.Lock()
		if c := m.byID[req.ID]; c != nil {
			resp.Pid = c.pid
		} else {
			resp.Error, resp.Kind = "container "+req.ID+" is not running", errdefs.Kind(errdefs.ErrNotFound)
		}
		m.mu.Unlock()
	case "kill":
		if err := m.kill(req.ID, syscall.Signal(req.Signal)); err != nil {
			resp.Error = err.Error()
		}
	case "resize":
		if err := m.resize(req); err != nil {
			resp.Error = err.Error()
		}
	case "reopen":
		m.mu.Lock()
		c := m.byID[req.ID]
		m.mu.Unlock()
		if c == nil {
			resp.Error = "container " + req.ID + " is not running"
		} else if err := c.log.Reopen(); err != nil {
			resp.Error = err.Error()
		}
	case "shutdown":
		m.mu.Lock()
		if len(m.byID) > 0 {
			resp.Error = fmt.Sprintf("%d containers still run", len(m.byID))
		} else {
			end = true
		}
		m.mu.Unlock()
	default:
		resp.Error = "unknown op " + req.Op
	}
	json.NewEncoder(conn).Encode(resp)
	return end
}

func (m *monitor) start(req Request) (int, error) {
	// A start crid retries after a crash that cut the first one short:
	// the container runs already, or ran.
	m.mu.Lock()
	running := m.byID[req.ID]
	m.mu.Unlock()
	if running != nil {
		return running.pid, nil
	}
	if _, ran, _ := ReadExit(req.Bundle); ran {
		return 0, fmt.Errorf("container %s ran already and exited: %w", req.ID, errdefs.ErrFailedPrecondition)
	}
	data, err := os.ReadFile(filepath.Join(req.Bundle, "config.json"))
	if err != nil {
		return 0, err
	}
	spec, err := executor.ParseConfig(data)
	if err != nil {
		return 0, fmt.Errorf("config.json: %w", err)
	}
	// The seccomp filter crid compiled for this spec, if it did: the init
	// then loads it rather than compiling the profile.
	if prog, err := os.ReadFile(filepath.Join(req.Bundle, executor.SeccompProgramFile)); err == nil {
		spec.SeccompProgram = prog
	}
	log, err := OpenLog(req.Log)
	if err != nil {
		return 0, err
	}
	cg, err := m.cg.Manager(spec.Linux.CgroupsPath)
	if err != nil {
		log.Close()
		return 0, err
	}
	c := &container{id: req.ID, bundle: req.Bundle, log: log, cgroup: cg, stdinOnce: req.StdinOnce, clients: map[net.Conn]bool{}}
	c.oomBefore, _ = cg.OOMKills()
	c.oom = WatchOOM(cg)
	// With a terminal the executor hands back its master, which carries
	// input and output both (output goes to the log as stdout, as with
	// containerd); without one, the container gets pipes.
	var stdio executor.Stdio
	var outR, errR, stdinR *os.File
	closeAll := func() {
		for _, f := range []*os.File{outR, errR, stdinR, c.stdin} {
			if f != nil {
				f.Close()
			}
		}
		log.Close()
		c.oom.Close()
	}
	if !spec.Process.Terminal {
		var outW, errW *os.File
		if outR, outW, err = os.Pipe(); err == nil {
			errR, errW, err = os.Pipe()
			if err != nil {
				outW.Close()
			}
		}
		if err == nil && req.Stdin {
			stdinR, c.stdin, err = os.Pipe()
		}
		if err != nil {
			closeAll()
			return 0, err
		}
		defer outW.Close()
		defer errW.Close()
		stdio = executor.Stdio{Stdout: outW, Stderr: errW}
		if stdinR != nil {
			stdio.Stdin = stdinR
		}
	}
	// The lock is held across the start so the reaper cannot see the exit
	// of a process not yet in byPid.
	m.mu.Lock()
	// The init is born in its cgroup (v2), or puts itself there before it
	// has a second thread (v1): either spares the kernel the
	// synchronize_rcu of moving it there.
	opts := executor.Options{CgroupJoin: cg.JoinFiles(), CgroupMounts: m.cgroupMounts}
	if dir, err := cg.CloneInto(); err == nil {
		defer dir.Close()
		opts.CgroupDir = dir
	}
	p, err := executor.StartConfig(m.bin, spec, stdio, opts)
	if stdinR != nil {
		stdinR.Close()
		stdinR = nil
	}
	if err != nil {
		m.mu.Unlock()
		closeAll()
		return 0, err
	}
	c.pid = p.Pid
	p.Release() // the reaper collects it
	// Everything the exit handling waits for or closes is in place before
	// the reaper can find the container: a process that exits at once
	// must still have its output logged and its terminal closed.
	c.console = p.Console
	if c.console != nil {
		if req.Stdin {
			c.stdin = c.console
		}
		c.copying.Add(1)
	} else {
		c.copying.Add(2)
	}
	m.byPid[c.pid] = c
	m.byID[c.id] = c
	m.mu.Unlock()
	if c.console != nil {
		// Reading the master ends (EIO) when the last process holding
		// the terminal is gone; the master is closed at the exit.
		go func() {
			defer c.copying.Done()
			log.CopyTerminal(io.TeeReader(c.console, fanout{c, FrameStdout}))
		}()
		return c.pid, nil
	}
	copyOut := func(stream string, frame byte, r *os.File) {
		defer c.copying.Done()
		log.Copy(stream, io.TeeReader(r, fanout{c, frame}))
		r.Close()
	}
	go copyOut("stdout", FrameStdout, outR)
	go copyOut("stderr", FrameStderr, errR)
	return c.pid, nil
}

// resize sets a running container's terminal size.
func (m *monitor) resize(req Request) error {
	m.mu.Lock()
	c := m.byID[req.ID]
	m.mu.Unlock()
	if c == nil {
		return fmt.Errorf("container %s is not running", req.ID)
	}
	if c.console == nil {
		return fmt.Errorf("container %s has no terminal", req.ID)
	}
	return unix.IoctlSetWinsize(int(c.console.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: req.Height, Col: req.Width})
}

func (m *monitor) kill(id string, sig syscall.Signal) error {
	m.mu.Lock()
	c := m.byID[id]
	m.mu.Unlock()
	if c == nil {
		return nil // already exited: nothing to signal
	}
	if err := syscall.Kill(c.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// reap collects every child: the containers' exits are recorded, the
// orphans they leave (reparented to the monitor as subreaper) are just
// collected.
func (m *monitor) reap(sigs chan os.Signal) {
	for range sigs {
		for {
			var ws syscall.WaitStatus
			m.mu.Lock()
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				m.mu.Unlock()
				break
			}
			c := m.byPid[pid]
			if c != nil {
				delete(m.byPid, pid)
				delete(m.byID, c.id)
			}
			m.mu.Unlock()
			if c != nil {
				go m.exited(c, ws)
			}
		}
	}
}

func (m *monitor) exited(c *container, ws syscall.WaitStatus) {
	e := Exit{Pid: c.pid, FinishedAt: time.Now()}
	if ws.Signaled() {
		e.Signal = int(ws.Signal())
		e.ExitCode = 128 + e.Signal
	} else {
		e.ExitCode = ws.ExitStatus()
	}
	if n, err := c.cgroup.OOMKills(); err == nil && n > c.oomBefore {
		e.OOMKilled = true
		e.OOM = c.oom.Report(c.cgroup, time.Second)
	}
	c.oom.Close()
	// A container ends with its main process. What it leaves in its
	// cgroup (a wrapper script's server, a daemon that ignored SIGTERM,
	// an exec) is killed before the exit is recorded: in a pod's shared
	// PID namespace nothing else would end them (they are reparented to
	// the pod's infra process), they would hold the output pipes open,
	// and the pod could never be removed. As runc's kill --all does:
	// cgroup.kill on v2, freeze, kill, thaw on v1.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := c.cgroup.KillAll(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "monitor: kill what container", c.id, "left:", err)
	}
	cancel()
	// Output the process left in the pipes is logged before the exit is.
	c.copying.Wait()
	c.log.Close()
	c.mu.Lock()
	for conn := range c.clients {
		conn.Close()
	}
	c.clients = nil
	c.closeStdin()
	if c.console != nil {
		c.console.Close()
	}
	c.mu.Unlock()
	if err := WriteExit(c.bundle, e); err != nil {
		fmt.Fprintln(os.Stderr, "monitor: record exit of", c.id+":", err)
	}
}

// WriteExit records a container's exit in its bundle, atomically: a reader
// sees no file or the whole of it. Tests of the managers play a monitor
// with it.
func WriteExit(bundle string, e Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, ExitFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, ExitFile))
}

// ReadExit reads a container's recorded exit; ok is false while it runs.
func ReadExit(bundle string) (Exit, bool, error) {
	data, err := os.ReadFile(filepath.Join(bundle, ExitFile))
	if errors.Is(err, os.ErrNotExist) {
		return Exit{}, false, nil
	}
	if err != nil {
		return Exit{}, false, err
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return Exit{}, false, err
	}
	return e, true, nil
}
