// Package container keeps a node's containers: their records, their root
// filesystems and cgroups, and their state as the pods' monitors report
// it. It asks the executor (through each pod's monitor) to run them and
// learns of their exits from the exit records the monitors write, so a
// crid restarted after kill -9 finds every container as it is.
//
// The manager calls nothing above it: the CRI server asks it to prepare,
// commit, start, stop and remove containers, and tells NRI plugins
// between those steps; what the manager learns by itself (an exit) it
// publishes as an event.
package container

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/oci/seccomp"
	"github.com/crid-dev/crid/pkg/proc"
	"github.com/crid-dev/crid/pkg/records"
	"github.com/crid-dev/crid/pkg/store"
)

// Options configure a Manager.
type Options struct {
	Root, RunRoot string
	Store         *store.Store
	Cgroups       Cgroups
	Layers        Layers
	Monitors      Monitors
	// RootFS mounts roots; nil is overlayfs.
	RootFS RootFS
	Execs  Execs
	// Events hears of each container created, started, stopped (an exit,
	// or a start that failed) and removed.
	Events *events.Broker
	// Metrics records exits, OOM kills and CPU throttling; nil records
	// nothing.
	Metrics *metrics.Metrics
	// Throttling says when a container's throttling is worth a log line.
	Throttling Throttling
	// Trash takes removed containers' bundles and writable layers, to
	// delete them after RemoveContainer returns; nil deletes them at once.
	Trash Trash
}

// Trash is where removed directories go (pkg/trash).
type Trash interface {
	Discard(path string) error
}

// Manager holds the node's containers.
type Manager struct {
	opts    Options
	records *records.Set[Container, *Container]

	mu      sync.Mutex
	exited  map[string]chan struct{} // closed when the container's exit is recorded
	exiting map[string]bool          // exits being recorded: each is recorded once

	watch *exitWatcher
	// seccomp compiles each distinct profile once, for every container
	// that runs it.
	seccomp seccomp.Cache
	// The throttling watch's goroutine: stopped by Close.
	stopThrottle context.CancelFunc
	throttleDone chan struct{}
	// writes are the records written after their call answered (a
	// start's running state): Close waits for them.
	writes sync.WaitGroup
}

// New loads the recorded containers, settles what happened to them while
// crid was away, and starts watching for exits. Close stops the watcher.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.RootFS == nil {
		opts.RootFS = Overlay{}
	}
	m := &Manager{
		opts:    opts,
		records: records.New[Container](opts.Store, store.BucketContainers, "container"),
		exited:  map[string]chan struct{}{},
		exiting: map[string]bool{},
	}
	for _, d := range []string{m.bundlesDir(), m.layersDir()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	w, err := newExitWatcher(m.checkExit)
	if err != nil {
		return nil, err
	}
	m.watch = w
	if err := m.load(ctx); err != nil {
		w.close()
		return nil, err
	}
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopThrottle, m.throttleDone = cancel, make(chan struct{})
	go m.watchThrottling(tctx)
	return m, nil
}

// Close stops watching for exits and throttling.
func (m *Manager) Close() {
	m.writes.Wait()
	m.stopThrottle()
	<-m.throttleDone
	m.watch.close()
}

func (m *Manager) bundlesDir() string { return filepath.Join(m.opts.RunRoot, "containers") }
func (m *Manager) layersDir() string  { return filepath.Join(m.opts.Root, "containers") }

// Get finds a container by ID or unique ID prefix, as the CRI may see it:
// one still being created does not exist yet.
func (m *Manager) Get(id string) (*Container, error) { return m.records.Visible(id) }

// GetShared is Get without the copy, for the status calls: the container
// is the manager's own, and must not be changed.
func (m *Manager) GetShared(id string) (*Container, error) { return m.records.VisibleShared(id) }

// List returns every container the CRI may see, oldest first.
func (m *Manager) List() []*Container { return m.records.ListVisible() }

// ListShared is List without the copies, for the list calls: the
// containers are the manager's own, and must not be changed.
func (m *Manager) ListShared() []*Container { return m.records.Shared() }

// Each calls f with every container, those being created included, as
// the manager holds them (unsorted, not copied) under its read lock, for
// sums over the node: f must not change them or call the manager.
func (m *Manager) Each(f func(*Container)) { m.records.Each(f) }

// ForSandbox lists a sandbox's containers, those being created included:
// a pod's stop and removal reach every container it has.
func (m *Manager) ForSandbox(sandboxID string) []*Container {
	return m.records.Matching(func(c *Container) bool { return c.SandboxID == sandboxID })
}

// load adopts the recorded containers: one whose create was cut short is
// undone; one that ran is checked against its monitor's exit record.
func (m *Manager) load(ctx context.Context) error {
	recs, err := m.records.Load()
	if err != nil {
		return err
	}
	for _, c := range recs {
		if c.Creating {
			logctx.From(withIDs(ctx, c)).Info("Cleaning up a container whose creation was interrupted")
			if err := m.teardown(ctx, c); err == nil {
				m.records.Drop(c.ID)
				continue
			}
		}
		m.opts.Layers.Hold(c.ID, c.ChainIDs)
		m.records.Adopt(c)
		m.opts.Metrics.Track(series(c))
		if c.State == Created {
			m.resolveStart(ctx, c)
		}
		if c.State != Running {
			continue
		}
		if e, ok, _ := monitor.ReadExit(c.Bundle); ok {
			m.recordExit(c, e)
			continue
		}
		if !m.opts.Monitors.Connect(c.MonitorDir).Alive(ctx) {
			// No monitor, no exit record: the node rebooted or the
			// monitor was killed; the container is gone with it.
			c.Message = "the container's monitor is gone (node reboot?): its exit is unknown"
			m.opts.Metrics.MonitorLost()
			m.recordExit(c, monitor.Exit{ExitCode: 255, FinishedAt: time.Now()})
			continue
		}
		m.exited[c.ID] = make(chan struct{})
		if err := m.watch.add(c.ID, c.Bundle); err != nil {
			return err
		}
		m.checkExit(c.ID)
	}
	return nil
}

// resolveStart finishes the record of a created container whose start a
// crash may have cut short: the monitor ran it (it runs, or its exit is
// in the bundle) or never did (it stays created, for the kubelet's
// retry). A container that no monitor runs costs a failed connect.
func (m *Manager) resolveStart(ctx context.Context, c *Container) {
	if _, ran, _ := monitor.ReadExit(c.Bundle); ran {
		c.State = Running // its exit is recorded next
	} else if pid, err := m.opts.Monitors.Connect(c.MonitorDir).Pid(ctx, c.ID); err == nil {
		c.State, c.Pid, c.StartedAt = Running, pid, time.Now()
		if t, err := proc.StartTime(pid); err == nil {
			c.StartedAt = t
		}
	} else {
		return
	}
	log := logctx.From(withIDs(ctx, c))
	log.Info("Resolved a start that crid's crash cut short", "name", c.Name, "state", c.State, "pid", c.Pid)
	if err := m.records.Put(c); err != nil {
		log.Error(err, "Recording a resolved start")
	}
}

// series names c's metrics as the kubelet names the container.
func series(c *Container) metrics.Container {
	return metrics.Container{Namespace: c.Labels["io.kubernetes.pod.namespace"], Pod: c.Labels["io.kubernetes.pod.name"], Name: c.Name}
}

// publish tells the listeners what became of c.
func (m *Manager) publish(c *Container, t events.Type) {
	m.opts.Events.Publish(events.Event{ContainerID: c.ID, SandboxID: c.SandboxID, Type: t})
}
