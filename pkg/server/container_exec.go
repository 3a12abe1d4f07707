package server

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// boundedOutput keeps the first max bytes written to it and counts the
// rest, which it drops: a probe that prints without end must not fill
// crid's memory, and must not block on a full pipe either, so the rest is
// read and thrown away rather than left unread. It has Write alone, on
// purpose: io.Copy prefers a writer's ReadFrom, and a buffer offering one
// (bytes.Buffer's) grows with whatever the reader has, past any cap
// Write enforces (100 MB from one exec once grew crid by 500 MiB).
type boundedOutput struct {
	data    []byte
	max     int
	dropped int64
}

func (b *boundedOutput) Write(p []byte) (int, error) {
	keep := min(len(p), b.max-len(b.data))
	b.data = append(b.data, p[:keep]...)
	b.dropped += int64(len(p) - keep)
	return len(p), nil
}

// truncation says what was dropped of a stream, for the reply's stderr.
func (b *boundedOutput) truncation(stream string) string {
	if b.dropped == 0 {
		return ""
	}
	return fmt.Sprintf("\ncrid: %s truncated: %d bytes past runtime.exec_sync_output_limit (%d) were dropped\n", stream, b.dropped, b.max)
}

// ExecSync runs a command in a running container as its process runs
// (user, capabilities, environment, working dir) and returns its output
// and exit code; past the timeout the command is killed and the call
// fails with DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if len(req.Cmd) == 0 {
		return nil, invalid("cmd", "is empty")
	}
	c, err := s.containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	cmd, err := s.containers.ExecCommand(ctx, c.ID, req.Cmd)
	if err != nil {
		return nil, err
	}
	limit := s.cfg.Runtime.ExecSyncOutputLimit
	stdout, stderr := &boundedOutput{max: limit}, &boundedOutput{max: limit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout)*time.Second)
		defer cancel()
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// SIGTERM makes the nsenter parent kill and reap the command; if it
		// does not answer, SIGKILL it (the command dies with it then, by
		// its parent-death signal).
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		return nil, fmt.Errorf("command %q in container %s timed out after %ds: %w", req.Cmd, c.ID, req.Timeout, context.DeadlineExceeded)
	}
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	// The notes go past the limit, by less than the 64 KiB the message
	// limit leaves besides both streams.
	errOut := append(stderr.data, stdout.truncation("stdout")+stderr.truncation("stderr")...)
	return &runtime.ExecSyncResponse{Stdout: stdout.data, Stderr: errOut, ExitCode: int32(code)}, nil
}
