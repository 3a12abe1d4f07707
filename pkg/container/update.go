package container

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci/executor"
)

// UpdateResources changes a container's cgroup limits in place, running
// or not yet started, and records them. One still being created has no
// cgroup yet: its limits are its create's (and NRI adjustment's) to set.
func (m *Manager) UpdateResources(ctx context.Context, id string, res *cgroups.Resources) error {
	c, err := m.records.Get(id)
	if err != nil {
		return err
	}
	unlock := m.records.Lock(c.ID)
	defer unlock()
	if c, err = m.records.Get(c.ID); err != nil {
		return err
	}
	switch {
	case c.Creating:
		return fmt.Errorf("container %s is still being created: %w", c.ID, errdefs.ErrFailedPrecondition)
	case c.State == Exited:
		return fmt.Errorf("container %s has exited: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	cg, err := m.opts.Cgroups.Manager(c.Cgroup)
	if err != nil {
		return err
	}
	if err := cg.Update(res); err != nil {
		return fmt.Errorf("update resources of container %s: %w", c.ID, err)
	}
	var applied cgroups.Resources
	if c.Resources != nil {
		applied = *c.Resources
	}
	applied = applied.With(res)
	c.Resources = &applied
	return m.records.Put(c)
}

// ReopenLog reopens a running container's log file.
func (m *Manager) ReopenLog(ctx context.Context, id string) error {
	c, err := m.Get(id)
	if err != nil {
		return err
	}
	if c.State != Running {
		return fmt.Errorf("container %s is %s: only a running container's log can be reopened: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	return m.opts.Monitors.Connect(c.MonitorDir).Reopen(ctx, c.ID)
}

// ExecCommand prepares args to run in a running container as its own
// process runs: user, groups, capabilities, environment, working dir,
// no_new_privs and seccomp filter, in its namespaces and cgroup. The
// caller sets the command's stdio and runs it.
func (m *Manager) ExecCommand(ctx context.Context, id string, args []string) (*exec.Cmd, error) {
	c, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	if c.State != Running {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	spec, err := c.Spec()
	if err != nil {
		return nil, err
	}
	p := *spec.Process
	p.Args, p.Terminal = args, false
	p.OOMScoreAdj = nil // the init's, which Start set; an exec is not given one
	cg, err := m.opts.Cgroups.Manager(c.Cgroup)
	if err != nil {
		return nil, err
	}
	// The profile compiled at create, when it was (a container made by
	// an older crid has none: the exec compiles it).
	prog, err := os.ReadFile(filepath.Join(c.Bundle, executor.SeccompProgramFile))
	if err != nil || spec.Linux.Seccomp == nil {
		prog = nil
	}
	return m.opts.Execs.Command(c.Pid, cg.JoinFiles(), &p, spec.Linux.Seccomp, prog)
}
