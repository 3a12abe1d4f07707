package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// Client talks to a pod's monitor. Every call takes a context: its
// deadline bounds the dial and the exchange (each has a bound of its own
// besides, so a wedged monitor never holds a caller without one).
type Client struct {
	dir string
}

// Ensure returns a client of the monitor in dir, starting the monitor if
// none answers there. The monitor is in a session of its own with no
// descriptor of crid's but the sealed crid-monitor it runs its helpers
// from, so it outlives crid.
func Ensure(ctx context.Context, bins Binaries, dir, cgroupMounts string) (*Client, error) {
	c := &Client{dir: dir}
	if c.Alive(ctx) {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cmd := bins.Monitor.Command(dir)
	cmd.Args[0] = "crid-podmon"
	// The helpers are Go: one P each, they live for one start or exit.
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	if cgroupMounts != "" {
		// The host's cgroup mounts, read once by crid: the helpers and
		// the inits need not read mountinfo (cgroups.Mounts).
		cmd.Env = append(cmd.Env, cgroups.MountsEnv+"="+cgroupMounts)
	}
	cmd.ExtraFiles = []*os.File{bins.Helper.File()} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	logf, err := os.OpenFile(filepath.Join(dir, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start monitor: %w", err)
	}
	// crid-podmon forks and its first process exits: the monitor is
	// init's child, and crid holds nothing of it (no thread in wait4, no
	// goroutine, no descriptor) once it said it is ready. A monitor that
	// says nothing within the bound has failed; it ends on its own.
	if f, ok := out.(*os.File); ok {
		deadline := time.Now().Add(readyTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		f.SetReadDeadline(deadline)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	// Wait closes out, after the ready line was read from it.
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil || line != "ready\n" {
		msg, _ := os.ReadFile(filepath.Join(dir, "monitor.log"))
		return nil, fmt.Errorf("monitor did not start: %v: %s", err, msg)
	}
	return c, nil
}

// readyTimeout bounds a monitor's start: a fork, a socket and a line.
const readyTimeout = 30 * time.Second

// Connect returns a client of an existing monitor, after a crid restart.
func Connect(dir string) *Client { return &Client{dir: dir} }

// dial connects to the monitor's socket through a descriptor of its dir,
// which keeps the socket path short whatever the dir's length.
func (c *Client) dial(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	d, err := os.Open(c.dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var dialer net.Dialer
	return dialer.DialContext(dctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), SocketName))
}

// Alive says whether the monitor answers.
func (c *Client) Alive(ctx context.Context) bool {
	conn, err := c.dial(ctx, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// callTimeout bounds one exchange with the monitor: a start runs the
// executor's whole setup of a container.
const callTimeout = 2 * time.Minute

func (c *Client) call(ctx context.Context, req Request) (Response, error) {
	conn, err := c.dial(ctx, 5*time.Second)
	if err != nil {
		return Response{}, fmt.Errorf("monitor of %s: %w", c.dir, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(callTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	// A cancel without a deadline (the caller went away) ends the
	// exchange too: the monitor carries on with the request regardless.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("monitor of %s: %w", c.dir, err)
	}
	if resp.Error != "" {
		return resp, errdefs.WithKind(resp.Error, resp.Kind)
	}
	return resp, nil
}

// Start runs the container whose bundle holds config.json, logging to log.
func (c *Client) Start(ctx context.Context, req Request) (int, error) {
	req.Op = "start"
	resp, err := c.call(ctx, req)
	return resp.Pid, err
}

// Pid is a running container's process ID; errdefs.ErrNotFound when the
// monitor runs no container of that ID.
func (c *Client) Pid(ctx context.Context, id string) (int, error) {
	resp, err := c.call(ctx, Request{Op: "pid", ID: id})
	return resp.Pid, err
}

// Attach connects to a running container's streams: what is written to
// the connection is its stdin; what is read is frames (see ReadFrame).
func (c *Client) Attach(ctx context.Context, id string) (net.Conn, error) {
	conn, err := c.dial(ctx, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(conn).Encode(Request{Op: "attach", ID: id}); err != nil {
		conn.Close()
		return nil, err
	}
	// The answer is one JSON line; read it byte by byte so no frame byte
	// after it is consumed.
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := conn.Read(b); err != nil {
			conn.Close()
			return nil, fmt.Errorf("attach to %s: %w", id, err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		conn.Close()
		return nil, err
	}
	if resp.Error != "" {
		conn.Close()
		return nil, errors.New(resp.Error)
	}
	return conn, nil
}

// Stream attaches to a running container and carries its streams until
// it ends, ctx ends or the client's input and the container's output are
// both done: in goes to its stdin (or terminal), its stdout and stderr
// frames to out and errOut (either may be nil: that stream is dropped).
func (c *Client) Stream(ctx context.Context, id string, in io.Reader, out, errOut io.Writer) error {
	conn, err := c.Attach(ctx, id)
	if err != nil {
		return err
	}
	defer conn.Close()
	if in != nil {
		go func() {
			io.Copy(conn, in)
			conn.(*net.UnixConn).CloseWrite()
		}()
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		stream, data, err := ReadFrame(conn)
		if err != nil {
			return nil // the container ended, or the client left
		}
		switch {
		case stream == FrameStdout && out != nil:
			out.Write(data)
		case stream == FrameStderr && errOut != nil:
			errOut.Write(data)
		}
	}
}

// ReadFrame reads one output frame of an attached connection.
func ReadFrame(r io.Reader) (stream byte, data []byte, err error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, nil, err
	}
	n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
	data = make([]byte, n)
	_, err = io.ReadFull(r, data)
	return hdr[0], data, err
}

// Kill signals a running container; one that has exited is not an error.
func (c *Client) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	_, err := c.call(ctx, Request{Op: "kill", ID: id, Signal: int(sig)})
	return err
}

// Resize sets the size of a running container's terminal.
func (c *Client) Resize(ctx context.Context, id string, width, height uint16) error {
	_, err := c.call(ctx, Request{Op: "resize", ID: id, Width: width, Height: height})
	return err
}

// Reopen reopens a running container's log.
func (c *Client) Reopen(ctx context.Context, id string) error {
	_, err := c.call(ctx, Request{Op: "reopen", ID: id})
	return err
}

// Shutdown ends the monitor; it refuses while a container runs.
func (c *Client) Shutdown(ctx context.Context) error {
	_, err := c.call(ctx, Request{Op: "shutdown"})
	return err
}
