package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci/executor"
)

// maxExecOutput caps what ExecSync keeps of each stream: a probe that
// prints without end must not fill crid's memory.
const maxExecOutput = 16 << 20

type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
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
	c, err := s.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	cmd, err := s.execCmd(c, req.Cmd)
	if err != nil {
		return nil, err
	}
	stdout, stderr := &cappedBuffer{max: maxExecOutput}, &cappedBuffer{max: maxExecOutput}
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
	return &runtime.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// execCmd prepares cmd to run in container c as its own process runs.
func (s *Server) execCmd(c *container.Container, args []string) (*exec.Cmd, error) {
	if c.State != container.Running {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	data, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, err
	}
	p := *spec.Process
	p.Args, p.Terminal = args, false
	p.OOMScoreAdj = nil
	cg, err := s.cgroups.Manager(c.Cgroup)
	if err != nil {
		return nil, err
	}
	return executor.ExecCmd(s.binary, c.Pid, cg.JoinFiles(), &p, spec.Linux.Seccomp)
}
