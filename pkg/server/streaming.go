package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/pty"
)

// Streaming is the exec/attach/port-forward server the kubelet redirects
// clients to (the k8s.io/cri-streaming server, over SPDY and WebSocket).
type Streaming struct {
	srv  streaming.Server
	http *http.Server
	lis  net.Listener
}

// StartStreaming listens on addr (port 0 picks one) and serves until Stop.
// The server's goroutine is owned by the returned Streaming.
func (s *Server) StartStreaming(addr string) (*Streaming, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming.address %s: %w", addr, err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = lis.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: lis.Addr().String()}
	srv, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		lis.Close()
		return nil, err
	}
	st := &Streaming{srv: srv, lis: lis, http: &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}}
	go func() {
		if err := st.http.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Streaming server stopped")
		}
	}()
	s.streaming = srv
	klog.InfoS("Streaming serving", "address", cfg.Addr)
	return st, nil
}

// Stop ends the streaming server and its open streams.
func (st *Streaming) Stop() error { return st.http.Close() }

func (s *Server) streamingServer() (streaming.Server, error) {
	if s.streaming == nil {
		return nil, fmt.Errorf("the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	return s.streaming, nil
}

// Exec answers with the URL where the kubelet's client runs the command.
func (s *Server) Exec(ctx context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	c, err := s.containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State != container.Running {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	if len(req.Cmd) == 0 {
		return nil, invalid("cmd", "is empty")
	}
	srv, err := s.streamingServer()
	if err != nil {
		return nil, err
	}
	return srv.GetExec(req)
}

// Attach answers with the URL where the client attaches to the
// container's streams, which its pod's monitor holds.
func (s *Server) Attach(ctx context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	c, err := s.containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State != container.Running {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	srv, err := s.streamingServer()
	if err != nil {
		return nil, err
	}
	return srv.GetAttach(req)
}

// PortForward answers with the URL where the client forwards ports.
func (s *Server) PortForward(ctx context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if _, err := s.sandboxes.Get(req.PodSandboxId); err != nil {
		return nil, err
	}
	srv, err := s.streamingServer()
	if err != nil {
		return nil, err
	}
	return srv.GetPortForward(req)
}

// streamRuntime does what the streaming server's clients ask.
type streamRuntime struct{ s *Server }

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	defer r.s.metrics.Stream("exec")()
	ec, err := r.s.containers.ExecCommand(ctx, id, cmd)
	if err != nil {
		return err
	}
	var wait func() error
	if tty {
		sizes := make(chan pty.Size)
		go func() {
			defer close(sizes)
			if resize == nil {
				return
			}
			// The streaming server closes resize when the session ends.
			for size := range resize {
				sizes <- pty.Size{Width: size.Width, Height: size.Height}
			}
		}()
		if wait, err = pty.Run(ec, in, out, sizes, 2*time.Second); err != nil {
			return err
		}
	} else {
		if in != nil {
			ec.Stdin = in
		}
		if out != nil {
			ec.Stdout = out
		}
		if errOut != nil {
			ec.Stderr = errOut
		}
		if err := ec.Start(); err != nil {
			return err
		}
		wait = ec.Wait
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		ec.Process.Signal(syscall.SIGTERM)
		err = <-done
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}

// Attach joins the client to the container's streams through the pod's
// monitor: its input becomes the container's stdin (or goes into its
// terminal), the container's output comes back as frames, and a
// terminal's resizes go to the monitor.
func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	defer r.s.metrics.Stream("attach")()
	c, err := r.s.containers.Get(id)
	if err != nil {
		return err
	}
	mon := monitor.Connect(c.MonitorDir)
	if c.Tty && resize != nil {
		// The streaming server closes resize when the session ends.
		go func() {
			for size := range resize {
				mon.Resize(ctx, c.ID, size.Width, size.Height)
			}
		}()
	}
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errOut != nil {
		stderr = errOut
	}
	return mon.Stream(ctx, c.ID, in, stdout, stderr)
}

// PortForward connects the stream to port on the pod's loopback, from
// inside the pod's network namespace (or the host's, for a host-network
// pod): only the pod's own address, never another host.
func (r streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer r.s.metrics.Stream("port-forward")()
	defer stream.Close()
	conn, err := r.s.sandboxes.DialPort(ctx, podID, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}
