package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/failpoint"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// Start runs a created container through its pod's monitor and returns
// it running. A start that fails leaves the container exited with reason
// StartError, as the CRI wants: it cannot be started again.
func (m *Manager) Start(ctx context.Context, id string) (*Container, error) {
	c, err := m.start(ctx, id)
	if err != nil {
		return nil, err
	}
	// An exit before the watch saw the file is caught here.
	m.checkExit(c.ID)
	return c, nil
}

func (m *Manager) start(ctx context.Context, id string) (*Container, error) {
	c, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	ctx = withIDs(ctx, c)
	unlock := m.records.Lock(c.ID)
	handedOff := false // to the write of the running state
	defer func() {
		if !handedOff {
			unlock()
		}
	}()
	if c, err = m.Get(c.ID); err != nil {
		return nil, err
	}
	if c.State != Created {
		return nil, fmt.Errorf("container %s is %s, not created: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	mon, err := m.opts.Monitors.Ensure(ctx, c.MonitorDir)
	if err != nil {
		return nil, err
	}
	failpoint.Hit("container.start.monitor")
	if err := checkLogPath(c); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.exited[c.ID] = done
	m.mu.Unlock()
	if err := m.watch.add(c.ID, c.Bundle); err != nil {
		return nil, err
	}
	// No record of intent is written first (two fsyncs, about 1 ms): a
	// crash while the monitor starts it leaves the record saying created,
	// and start-up asks the monitor of every created container whether it
	// runs it (resolveStart); a retried start finds it running.
	//
	// The start time is taken before the request: a short-lived process
	// can exit (and the monitor stamp its exit) before the answer is
	// back, and a container must not finish before it started.
	asked := time.Now()
	pid, err := mon.Start(ctx, monitor.Request{ID: c.ID, Bundle: c.Bundle, Log: c.LogPath, Stdin: c.Stdin, StdinOnce: c.StdinOnce})
	if err != nil {
		m.watch.remove(c.ID)
		m.failStart(ctx, c, err)
		return nil, fmt.Errorf("start container %s: %w", c.ID, err)
	}
	failpoint.Hit("container.start.started")
	c.State, c.Pid, c.StartedAt = Running, pid, asked
	// The running state is in memory at once and on disk just after the
	// answer: its write (two fdatasyncs, about 1 ms) adds nothing to the
	// call. The write holds the container's lock, so whatever changes the
	// container next (its exit, a stop, a removal) waits for it; a crash
	// before it leaves the record created, which start-up resolves from
	// the monitor (resolveStart), with the process's own start time.
	m.records.Stage(c)
	handedOff = true
	m.writes.Add(1)
	go func(c *Container, log klog.Logger) {
		defer m.writes.Done()
		defer unlock()
		if err := m.records.Put(c); err != nil {
			log.Error(err, "Recording a started container; start-up will resolve it from its monitor")
		}
		failpoint.Hit("container.start.recorded")
	}(c.DeepCopy(), logctx.From(ctx))
	m.publish(c, events.Started)
	logctx.From(ctx).Info("Container started", "name", c.Name, "pid", pid)
	return c, nil
}

// checkLogPath refuses a log path that has become a symlink, or lies
// under one, since the container was made. The monitor opens the log
// refusing symlinks on its path; this says why, with the code a bad
// request gets, rather than as its open's ELOOP.
func checkLogPath(c *Container) error {
	if c.LogPath == "" {
		return nil
	}
	os.MkdirAll(filepath.Dir(c.LogPath), 0o755)
	if fd, err := unix.Openat2(unix.AT_FDCWD, filepath.Dir(c.LogPath), &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS}); err == nil {
		unix.Close(fd)
	} else if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("container %s: the log directory %s has become a symlink since the container was made: %w", c.ID, filepath.Dir(c.LogPath), errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Lstat(c.LogPath); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("container %s: log_path %s is a symlink: crid writes logs only to files it can open without following one: %w", c.ID, c.LogPath, errdefs.ErrInvalidArgument)
	}
	return nil
}

// FailStart ends a created container that must not start (an NRI plugin
// refused it): exited, reason StartError, cause as the message.
func (m *Manager) FailStart(ctx context.Context, id string, cause error) error {
	unlock := m.records.Lock(id)
	defer unlock()
	c, err := m.records.Get(id)
	if err != nil {
		return err
	}
	if c.State != Created {
		return nil
	}
	m.failStart(withIDs(ctx, c), c, cause)
	return nil
}

// failStart records a start that failed. The caller holds c's lock.
func (m *Manager) failStart(ctx context.Context, c *Container, cause error) {
	c.State, c.FinishedAt, c.ExitCode, c.Reason, c.Message = Exited, time.Now(), 128, "StartError", cause.Error()
	log := logctx.From(ctx)
	if err := m.records.Put(c); err != nil {
		log.Error(err, "Recording a failed start")
	}
	log.Info("Container failed to start", "name", c.Name, "error", cause)
	m.opts.Metrics.Exit(series(c), c.Reason)
	m.mu.Lock()
	if ch, ok := m.exited[c.ID]; ok {
		close(ch)
		delete(m.exited, c.ID)
	}
	m.mu.Unlock()
	m.publish(c, events.Stopped)
}

// checkExit moves a running container to exited when its monitor has
// recorded the exit. The exit watcher calls it, and Start, Stop and
// start-up.
func (m *Manager) checkExit(id string) {
	c, err := m.records.Get(id)
	if err != nil || c.State != Running {
		return
	}
	e, ok, err := monitor.ReadExit(c.Bundle)
	if err != nil || !ok {
		return
	}
	m.recordExit(c, e)
}

// recordExit moves c to exited with e. The watcher, Start, Stop and load
// may each find the same exit: the first claims it and records it (and
// tells the listeners), the others see it claimed or done. Waiters on
// the exit wait for the whole of it.
func (m *Manager) recordExit(c *Container, e monitor.Exit) {
	m.mu.Lock()
	if m.exiting[c.ID] {
		m.mu.Unlock()
		return
	}
	m.exiting[c.ID] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.exiting, c.ID)
		m.mu.Unlock()
	}()
	unlock := m.records.Lock(c.ID)
	defer unlock()
	cur, err := m.records.Get(c.ID)
	if err != nil || cur.State != Running {
		return
	}
	cur.Message = c.Message // what the caller knows of a lost exit
	c = cur
	c.State, c.FinishedAt, c.ExitCode = Exited, e.FinishedAt, int32(e.ExitCode)
	switch {
	case e.OOMKilled:
		c.Reason = "OOMKilled"
	case e.ExitCode == 0:
		c.Reason = "Completed"
	default:
		c.Reason = "Error"
	}
	if msg, err := os.ReadFile(c.TerminationLog()); err == nil && len(msg) > 0 {
		if len(msg) > 4096 {
			msg = msg[:4096]
		}
		c.Message = string(msg)
	}
	if e.OOMKilled && e.OOM != nil {
		// What filled the limit goes first: the kubelet shows the message
		// as the terminated state's, where operators look.
		c.OOM = e.OOM
		var own int64
		if c.Resources != nil {
			own = c.Resources.MemoryLimit
		}
		explained := OOMMessage(e.OOM, c.Cgroup, own)
		if c.Message != "" {
			explained += "\n" + c.Message
		}
		c.Message = explained
	}
	log := logctx.From(withIDs(context.Background(), c))
	if err := m.records.Put(c); err != nil {
		log.Error(err, "Recording a container's exit")
	}
	m.watch.remove(c.ID)
	m.mu.Lock()
	if ch, ok := m.exited[c.ID]; ok {
		close(ch)
		delete(m.exited, c.ID)
	}
	m.mu.Unlock()
	log.Info("Container exited", "name", c.Name, "exitCode", c.ExitCode, "reason", c.Reason)
	m.opts.Metrics.Exit(series(c), c.Reason)
	if c.OOM != nil {
		logOOM(log, c)
	}
	m.publish(c, events.Stopped)
}

// Stop signals a running container (its stop signal, else SIGTERM), waits
// up to timeout, then kills it. A created container is marked exited (it
// can never start); stopping a stopped container succeeds.
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := m.records.Get(id)
	if err != nil {
		return err
	}
	ctx = withIDs(ctx, c)
	switch c.State {
	case Created:
		return m.stopCreated(ctx, c.ID)
	case Exited:
		return nil
	}
	m.mu.Lock()
	done := m.exited[c.ID]
	m.mu.Unlock()
	if done == nil {
		// Its exit was recorded since c was read: a running container
		// has its channel from Start (or start-up) until then.
		return nil
	}
	mon := m.opts.Monitors.Connect(c.MonitorDir)
	sig := syscall.SIGTERM
	if c.StopSignal != 0 {
		sig = syscall.Signal(c.StopSignal)
	}
	if timeout > 0 {
		logctx.From(ctx).Info("Stopping container", "name", c.Name, "signal", sig, "timeout", timeout)
		if err := mon.Kill(ctx, c.ID, sig); err != nil && mon.Alive(ctx) {
			return fmt.Errorf("signal container %s: %w", c.ID, err)
		}
		failpoint.Hit("container.stop.signalled")
		select {
		case <-done:
			return nil
		case <-time.After(timeout):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if timeout <= 0 {
		logctx.From(ctx).Info("Killing container", "name", c.Name)
	}
	if err := mon.Kill(ctx, c.ID, syscall.SIGKILL); err != nil && mon.Alive(ctx) {
		return fmt.Errorf("kill container %s: %w", c.ID, err)
	}
	if !mon.Alive(ctx) {
		// The monitor is gone (a reboot, or killed): so is the container.
		m.opts.Metrics.MonitorLost()
		m.recordExit(c, monitor.Exit{ExitCode: 255, FinishedAt: time.Now()})
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("container %s did not exit after SIGKILL", c.ID)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopCreated ends a container that never started.
func (m *Manager) stopCreated(ctx context.Context, id string) error {
	unlock := m.records.Lock(id)
	defer unlock()
	c, err := m.records.Get(id)
	if err != nil || c.State != Created {
		return nil
	}
	c.State, c.FinishedAt, c.Reason = Exited, time.Now(), "Completed"
	if err := m.records.Put(c); err != nil {
		return err
	}
	logctx.From(ctx).Info("Container stopped before it started", "name", c.Name)
	m.publish(c, events.Stopped)
	return nil
}

// Remove stops a container if it runs and removes everything it made.
// Removing a removed container succeeds.
func (m *Manager) Remove(ctx context.Context, id string) error {
	c, err := m.records.Get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx = withIDs(ctx, c)
	// A concurrent removal may finish first: the container is removed
	// either way, which is what the CRI asks of every caller.
	if err := m.Stop(ctx, c.ID, 0); errors.Is(err, errdefs.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	unlock := m.records.Lock(c.ID)
	defer unlock()
	if c, err = m.records.Get(c.ID); err != nil {
		return nil
	}
	failpoint.Hit("container.remove.stopped")
	if err := m.teardown(ctx, c); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	failpoint.Hit("container.remove.torn-down")
	if err := m.forget(c); err != nil {
		return err
	}
	m.publish(c, events.Deleted)
	m.opts.Metrics.Forget(series(c))
	logctx.From(ctx).Info("Container removed", "name", c.Name)
	return nil
}

// teardown undoes what a container's record says was made; each step is
// safe to repeat.
func (m *Manager) teardown(ctx context.Context, c *Container) error {
	var errs []error
	m.watch.remove(c.ID)
	// Image volumes are detached before anything under the bundle is
	// removed: a removal must never walk into an image's layers.
	for i := range c.ImageVolumes {
		if err := m.opts.RootFS.Unmount(c.imageVolumeDir(i)); err != nil {
			return fmt.Errorf("unmount image volume %d: %w", i, err)
		}
	}
	if c.Mounted {
		if err := m.opts.RootFS.Unmount(c.Rootfs()); err != nil {
			errs = append(errs, fmt.Errorf("unmount rootfs: %w", err))
		}
		failpoint.Hit("container.teardown.rootfs")
	}
	if c.Cgroup != "" {
		if cg, err := m.opts.Cgroups.Manager(c.Cgroup); err == nil {
			errs = append(errs, cg.Destroy(ctx))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The rootfs is unmounted and the image volumes detached: what is
	// left is files, deleted after the call returns.
	errs = append(errs, m.discard(c.Bundle), m.discard(c.Layer))
	return errors.Join(errs...)
}

func (m *Manager) discard(dir string) error {
	if m.opts.Trash == nil {
		return os.RemoveAll(dir)
	}
	return m.opts.Trash.Discard(dir)
}

// forget drops a torn-down container's record and its hold on layers.
// The caller holds its lock.
func (m *Manager) forget(c *Container) error {
	if err := m.records.Delete(c); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.exited, c.ID)
	m.mu.Unlock()
	m.opts.Layers.Release(c.ID)
	return nil
}

// withIDs is ctx with a logger naming c and its pod.
func withIDs(ctx context.Context, c *Container) context.Context {
	return logctx.With(ctx, "pod", c.SandboxID, "container", c.ID)
}
