// Package container keeps a node's containers: their records, their root
// filesystems and cgroups, and their state as the pods' monitors report
// it. It asks the executor (through each pod's monitor) to run them and
// learns of their exits from the exit records the monitors write, so a
// crid restarted after kill -9 finds every container as it is.
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/ids"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/oci/generate"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/reexec"
	"github.com/crid-dev/crid/pkg/store"
)

// State is a container's CRI state.
type State string

const (
	Created State = "created"
	Running State = "running"
	Exited  State = "exited"
)

// Container is a container's record.
type Container struct {
	ID        string `json:"id"`
	SandboxID string `json:"sandboxID"`
	Name      string `json:"name"`
	Attempt   uint32 `json:"attempt"`

	Image       string            `json:"image"`   // as the request named it
	ImageID     string            `json:"imageID"` // config digest
	ImageRef    string            `json:"imageRef"`
	ChainIDs    []string          `json:"chainIDs"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	LogPath     string            `json:"logPath,omitempty"`
	Raw         json.RawMessage   `json:"raw,omitempty"`

	Bundle     string `json:"bundle"` // config.json, rootfs mount point, exit.json
	Layer      string `json:"layer"`  // upper and work dirs
	Cgroup     string `json:"cgroup"`
	MonitorDir string `json:"monitorDir"`
	Stdin      bool   `json:"stdin,omitempty"`
	StdinOnce  bool   `json:"stdinOnce,omitempty"`
	Tty        bool   `json:"tty,omitempty"`
	StopSignal int    `json:"stopSignal,omitempty"`

	State      State     `json:"state"`
	Creating   bool      `json:"creating,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitempty"`
	Pid        int       `json:"pid,omitempty"`
	ExitCode   int32     `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	Mounted    bool      `json:"mounted,omitempty"`

	// Image volumes mounted under the bundle, by mount index, and the
	// images they are (for status).
	ImageVolumes map[int]string `json:"imageVolumes,omitempty"`

	// Who the process runs as, as resolved against the image at create.
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`

	// Resources are the cgroup limits last applied (at create, or by an
	// update), for those asking what the container is given.
	Resources *cgroups.Resources `json:"resources,omitempty"`
}

// Key is the name a container reserves in its pod.
func (c *Container) Key() string { return fmt.Sprintf("%s_%s_%d", c.SandboxID, c.Name, c.Attempt) }

// Rootfs is where the container's root is mounted on the host.
func (c *Container) Rootfs() string { return filepath.Join(c.Bundle, "rootfs") }

// TerminationLog is the host file behind termination_message_path.
func (c *Container) TerminationLog() string { return filepath.Join(c.Bundle, "termination-log") }

func (c *Container) copy() *Container {
	d := *c
	d.ChainIDs = append([]string(nil), c.ChainIDs...)
	if c.Resources != nil {
		r := *c.Resources
		d.Resources = &r
	}
	return &d
}

// Options configure a Manager.
type Options struct {
	Root, RunRoot string
	Store         *store.Store
	Cgroups       *cgroups.Hierarchy
	Images        *image.Service
	Binary        *reexec.Binary
	// Events hears of each container created, started, stopped (an exit,
	// or a start that failed) and removed.
	Events *events.Broker
	// Hooks are told of each step where a plugin may still act.
	Hooks Hooks
}

// Hooks hear of a container's life at the points where someone outside
// crid (an NRI plugin) may act on it; crid's NRI host is the one. Any may
// be nil. They are called in the order of the container's life, each once.
type Hooks struct {
	// Create sees a container about to be made: its spec and limits,
	// which it may change. The container is not listed yet; an error
	// fails the create, which undoes everything.
	Create func(ctx context.Context, c *Container, spec *specs.Spec, res *cgroups.Resources) error
	// Created follows a successful create.
	Created func(ctx context.Context, c *Container)
	// Start runs before the container's process; an error fails the start.
	Start func(ctx context.Context, c *Container) error
	// Started follows a successful start.
	Started func(ctx context.Context, c *Container)
	// Stopped hears of a container's end, whether it exited, was stopped
	// or never started, before its state says exited: the same exit is
	// never told twice.
	Stopped func(ctx context.Context, c *Container)
	// Removed follows a container's removal, and a create that failed
	// after Create ran (so whoever saw it may forget it).
	Removed func(ctx context.Context, c *Container)
}

// Manager holds the node's containers.
type Manager struct {
	opts Options

	mu         sync.RWMutex
	containers map[string]*Container
	names      map[string]string
	exited     map[string]chan struct{} // closed when the container's exit is known
	ops        ids.Locks                // one change of a container at a time
	exitMu     sync.Mutex               // guards exiting
	exiting    map[string]bool          // exits being recorded: each is recorded once

	watch *exitWatcher
}

// New loads the recorded containers, settles what happened to them while
// crid was away, and starts watching for exits. Close stops the watcher.
func New(ctx context.Context, opts Options) (*Manager, error) {
	m := &Manager{opts: opts, containers: map[string]*Container{}, names: map[string]string{}, exited: map[string]chan struct{}{}, exiting: map[string]bool{}}
	for _, d := range []string{m.bundlesDir(), m.layersDir()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	w, err := newExitWatcher(m.onExit)
	if err != nil {
		return nil, err
	}
	m.watch = w
	if err := m.load(ctx); err != nil {
		w.close()
		return nil, err
	}
	return m, nil
}

// Close stops watching for exits.
func (m *Manager) Close() { m.watch.close() }

func (m *Manager) bundlesDir() string { return filepath.Join(m.opts.RunRoot, "containers") }
func (m *Manager) layersDir() string  { return filepath.Join(m.opts.Root, "containers") }

// Get finds a container by ID or unique ID prefix.
func (m *Manager) Get(id string) (*Container, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, err := ids.Lookup(m.containers, id, "container")
	if err != nil {
		return nil, err
	}
	return c.copy(), nil
}

// List returns every container, oldest first.
func (m *Manager) List() []*Container {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Container, 0, len(m.containers))
	for _, c := range m.containers {
		out = append(out, c.copy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// LayersInUse names the image layers containers' roots stand on.
func (m *Manager) LayersInUse() map[string]bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	used := map[string]bool{}
	for _, c := range m.containers {
		for _, id := range c.ChainIDs {
			used[id] = true
		}
	}
	return used
}

func (m *Manager) save(c *Container) error {
	if err := m.opts.Store.Put(store.BucketContainers, c.ID, c); err != nil {
		return fmt.Errorf("record container %s: %w", c.ID, err)
	}
	m.mu.Lock()
	m.containers[c.ID] = c.copy()
	m.mu.Unlock()
	return nil
}

func (m *Manager) forget(c *Container) error {
	if err := m.opts.Store.Delete(store.BucketContainers, c.ID); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.containers, c.ID)
	if m.names[c.Key()] == c.ID {
		delete(m.names, c.Key())
	}
	delete(m.exited, c.ID)
	m.mu.Unlock()
	m.ops.Forget(c.ID)
	return nil
}

// deviceRules are a spec's device cgroup rules in the cgroup's terms.
func deviceRules(in []specs.LinuxDeviceCgroup) []cgroups.DeviceRule {
	out := make([]cgroups.DeviceRule, 0, len(in))
	for _, d := range in {
		r := cgroups.DeviceRule{Allow: d.Allow, Type: 'a', Major: -1, Minor: -1, Access: d.Access}
		if d.Type != "" {
			r.Type = d.Type[0]
		}
		if d.Major != nil {
			r.Major = *d.Major
		}
		if d.Minor != nil {
			r.Minor = *d.Minor
		}
		if r.Access == "" {
			r.Access = "rwm"
		}
		out = append(out, r)
	}
	return out
}

// ImageVolume is an image mounted read-only into a container.
type ImageVolume struct {
	Image   *image.Image
	SubPath string
}

// CreateParams is what a container is made from.
type CreateParams struct {
	SandboxID, SandboxCgroup, MonitorDir string
	Name                                 string
	Attempt                              uint32
	Image                                *image.Image
	ImageName                            string
	Labels, Annotations                  map[string]string
	LogPath                              string
	Raw                                  json.RawMessage
	Resources                            *cgroups.Resources
	StopSignal                           int
	Stdin, StdinOnce, Tty                bool
	// Spec builds the runtime spec once the root is mounted, with the
	// image's users read from it and the termination log's host path.
	Spec func(rootfs string, users generate.Users, terminationLog string, imageVolumes map[int]string) (*specs.Spec, error)
	// ImageVolumes are the images the request mounts, by mount index.
	ImageVolumes map[int]ImageVolume
	// UserNS is the pod's user namespace, when it has one, and Root the
	// host IDs its root maps to: the root filesystem is made theirs.
	UserNS           string
	RootUID, RootGID uint32
}

// Create makes a container: its name reserved, its record written first,
// then its cgroup, writable layer, root filesystem and bundle; any failure
// undoes every step.
func (m *Manager) Create(ctx context.Context, p CreateParams) (_ *Container, err error) {
	c := &Container{
		ID: ids.New(), SandboxID: p.SandboxID, Name: p.Name, Attempt: p.Attempt,
		Image: p.ImageName, ImageID: p.Image.ID, ImageRef: p.Image.ID, Labels: p.Labels, Annotations: p.Annotations,
		LogPath: p.LogPath, Raw: p.Raw, MonitorDir: p.MonitorDir, StopSignal: p.StopSignal,
		Stdin: p.Stdin, StdinOnce: p.StdinOnce, Tty: p.Tty,
		State: Created, Creating: true, CreatedAt: time.Now(),
	}
	if len(p.Image.RepoDigests) > 0 {
		c.ImageRef = p.Image.RepoDigests[0]
	}
	for _, l := range p.Image.Layers {
		c.ChainIDs = append(c.ChainIDs, l.ChainID)
	}
	c.ImageVolumes = map[int]string{}
	for i, v := range p.ImageVolumes {
		c.ImageVolumes[i] = v.Image.ID
		for _, l := range v.Image.Layers {
			c.ChainIDs = append(c.ChainIDs, l.ChainID)
		}
	}
	c.Bundle = filepath.Join(m.bundlesDir(), c.ID)
	c.Layer = filepath.Join(m.layersDir(), c.ID)
	if c.Cgroup, err = cgroups.Join(p.SandboxCgroup, "crid-"+c.ID); err != nil {
		return nil, err
	}

	m.mu.Lock()
	if other, ok := m.names[c.Key()]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("container name %q is reserved for container %s in sandbox %s; remove it first: %w", p.Name, other, p.SandboxID, errdefs.ErrAlreadyExists)
	}
	m.names[c.Key()] = c.ID
	m.mu.Unlock()
	unlock := m.ops.Lock(c.ID)
	defer unlock()
	if err := m.save(c); err != nil {
		m.mu.Lock()
		delete(m.names, c.Key())
		m.mu.Unlock()
		return nil, err
	}
	hooked := false // whether Hooks.Create saw the container
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if hooked && m.opts.Hooks.Removed != nil {
				m.opts.Hooks.Removed(cctx, c.copy())
			}
			if terr := m.teardown(cctx, c); terr != nil {
				klog.ErrorS(terr, "Undoing a failed container left something; start-up will retry", "container", c.ID)
				return
			}
			m.forget(c)
		}
	}()

	upper, work := filepath.Join(c.Layer, "upper"), filepath.Join(c.Layer, "work")
	for _, d := range []string{upper, work, c.Rootfs()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	c.Mounted = true
	if err := m.save(c); err != nil {
		return nil, err
	}
	if p.UserNS != "" {
		// The root directory comes from upper: the container's root owns it.
		if err := os.Chown(upper, int(p.RootUID), int(p.RootGID)); err != nil {
			return nil, err
		}
		err = image.MountOverlayIDMapped(c.Rootfs(), m.opts.Images.LayerDirs(p.Image), upper, work, p.UserNS)
	} else {
		err = image.MountOverlay(c.Rootfs(), m.opts.Images.LayerDirs(p.Image), upper, work)
	}
	if err != nil {
		return nil, err
	}
	users := generate.ParseUsers(readInRoot(c.Rootfs(), "/etc/passwd"), readInRoot(c.Rootfs(), "/etc/group"))
	if err := os.WriteFile(c.TerminationLog(), nil, 0o644); err != nil {
		return nil, err
	}
	volumes := map[int]string{}
	for i, v := range p.ImageVolumes {
		dir := c.imageVolumeDir(i)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := image.MountOverlay(dir, m.opts.Images.LayerDirs(v.Image), "", ""); err != nil {
			return nil, fmt.Errorf("image volume %d: %w", i, err)
		}
		src, err := subPathIn(dir, v.SubPath)
		if err != nil {
			return nil, fmt.Errorf("mounts[%d].image_sub_path %q: %v: %w", i, v.SubPath, err, errdefs.ErrInvalidArgument)
		}
		volumes[i] = src
	}
	spec, err := p.Spec(c.Rootfs(), users, c.TerminationLog(), volumes)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	spec.Linux.CgroupsPath = c.Cgroup
	c.UID, c.GID, c.Groups = spec.Process.User.UID, spec.Process.User.GID, spec.Process.User.AdditionalGids
	res := &cgroups.Resources{}
	if p.Resources != nil {
		*res = *p.Resources
	}
	if m.opts.Hooks.Create != nil {
		hooked = true
		if err := m.opts.Hooks.Create(ctx, c.copy(), spec, res); err != nil {
			return nil, err
		}
	}
	// The cgroup is made once its limits are final (a hook may change
	// them); nothing runs in it before Start.
	if r := spec.Linux.Resources; r != nil {
		res.Devices = deviceRules(r.Devices)
	}
	cg, err := m.opts.Cgroups.Manager(c.Cgroup)
	if err != nil {
		return nil, err
	}
	if err := cg.Create(res); err != nil {
		return nil, fmt.Errorf("container cgroup: %w", err)
	}
	c.Resources = res
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.Bundle, "config.json"), data, 0o600); err != nil {
		return nil, err
	}
	c.Creating = false
	if err := m.save(c); err != nil {
		return nil, err
	}
	m.publish(c, events.Created)
	if m.opts.Hooks.Created != nil {
		m.opts.Hooks.Created(ctx, c.copy())
	}
	return c.copy(), nil
}

func (c *Container) imageVolumeDir(i int) string {
	return filepath.Join(c.Bundle, "image-volumes", fmt.Sprint(i))
}

// subPathIn resolves sub inside the mounted image at root, symlinks
// resolved as the image sees them, and never outside it.
func subPathIn(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, sub, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return "", fmt.Errorf("not in the image: %w", err)
	}
	defer unix.Close(fd)
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if real != root && !strings.HasPrefix(real, root+"/") {
		return "", fmt.Errorf("resolves outside the image")
	}
	return real, nil
}

// readInRoot reads a file of the container's root without following a
// symlink out of it: the image decides what /etc/passwd is.
func readInRoot(root, p string) []byte {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, p, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	data := make([]byte, 1<<20)
	n, _ := f.Read(data)
	return data[:n]
}

// Start runs a created container through its pod's monitor.
func (m *Manager) Start(ctx context.Context, id string) error {
	c, err := m.Get(id)
	if err != nil {
		return err
	}
	unlock := m.ops.Lock(c.ID)
	defer unlock()
	if c, err = m.Get(c.ID); err != nil {
		return err
	}
	if c.State != Created {
		return fmt.Errorf("container %s is %s, not created: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	if m.opts.Hooks.Start != nil {
		if err := m.opts.Hooks.Start(ctx, c.copy()); err != nil {
			c.State, c.FinishedAt, c.ExitCode, c.Reason, c.Message = Exited, time.Now(), 128, "StartError", err.Error()
			m.stopped(ctx, c)
			m.save(c)
			m.publish(c, events.Stopped)
			return fmt.Errorf("start container %s: %w", c.ID, err)
		}
	}
	mon, err := monitor.Ensure(m.opts.Binary, c.MonitorDir)
	if err != nil {
		return err
	}
	if c.LogPath != "" {
		os.MkdirAll(filepath.Dir(c.LogPath), 0o755)
		// The monitor opens the log refusing symlinks on its path; say why
		// here, with the code a bad request gets, rather than as its
		// open's ELOOP.
		if fd, err := unix.Openat2(unix.AT_FDCWD, filepath.Dir(c.LogPath), &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS}); err == nil {
			unix.Close(fd)
		} else if errors.Is(err, unix.ELOOP) {
			return fmt.Errorf("container %s: the log directory %s has become a symlink since the container was made: %w", c.ID, filepath.Dir(c.LogPath), errdefs.ErrInvalidArgument)
		}
		if fi, err := os.Lstat(c.LogPath); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("container %s: log_path %s is a symlink: crid writes logs only to files it can open without following one: %w", c.ID, c.LogPath, errdefs.ErrInvalidArgument)
		}
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.exited[c.ID] = done
	m.mu.Unlock()
	if err := m.watch.add(c.ID, c.Bundle); err != nil {
		return err
	}
	pid, err := mon.Start(monitor.Request{ID: c.ID, Bundle: c.Bundle, Log: c.LogPath, Stdin: c.Stdin, StdinOnce: c.StdinOnce})
	if err != nil {
		c.State, c.FinishedAt, c.ExitCode, c.Reason, c.Message = Exited, time.Now(), 128, "StartError", err.Error()
		m.watch.remove(c.ID)
		m.stopped(ctx, c)
		m.save(c)
		close(done)
		m.publish(c, events.Stopped)
		return fmt.Errorf("start container %s: %w", c.ID, err)
	}
	c.State, c.Pid, c.StartedAt = Running, pid, time.Now()
	if err := m.save(c); err != nil {
		return err
	}
	m.publish(c, events.Started)
	if m.opts.Hooks.Started != nil {
		m.opts.Hooks.Started(ctx, c.copy())
	}
	// An exit before the watch saw the file is caught here.
	m.checkExit(c.ID)
	return nil
}

// onExit is the watcher's report that a container's exit record appeared.
func (m *Manager) onExit(id string) { m.checkExit(id) }

// checkExit moves a running container to exited when its monitor has
// recorded the exit.
func (m *Manager) checkExit(id string) {
	c, err := m.Get(id)
	if err != nil || c.State != Running {
		return
	}
	e, ok, err := monitor.ReadExit(c.Bundle)
	if err != nil || !ok {
		return
	}
	m.recordExit(c, e)
}

func (m *Manager) recordExit(c *Container, e monitor.Exit) {
	// The watcher, Start, Stop and load may each find the same exit: the
	// first claims it and records it (and tells the listeners), the others
	// see it claimed or done. Waiters on the exit wait for the whole of it.
	m.exitMu.Lock()
	if cur, err := m.Get(c.ID); err != nil || cur.State != Running || m.exiting[c.ID] {
		m.exitMu.Unlock()
		return
	}
	m.exiting[c.ID] = true
	m.exitMu.Unlock()
	defer func() {
		m.exitMu.Lock()
		delete(m.exiting, c.ID)
		m.exitMu.Unlock()
	}()
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
	m.stopped(context.Background(), c)
	m.save(c)
	m.watch.remove(c.ID)
	m.mu.Lock()
	if ch, ok := m.exited[c.ID]; ok {
		close(ch)
		delete(m.exited, c.ID)
	}
	m.mu.Unlock()
	m.publish(c, events.Stopped)
}

// stopped tells the hooks of c's end, before its state says so: a plugin
// hears of the stop before anyone can remove the container.
func (m *Manager) stopped(ctx context.Context, c *Container) {
	if m.opts.Hooks.Stopped != nil {
		m.opts.Hooks.Stopped(ctx, c.copy())
	}
}

// publish tells the listeners what became of c.
func (m *Manager) publish(c *Container, t events.Type) {
	m.opts.Events.Publish(events.Event{ContainerID: c.ID, SandboxID: c.SandboxID, Type: t})
}

// Stop signals a running container (its stop signal, else SIGTERM), waits
// up to timeout, then kills it. A stopped container stays stopped, and
// stopping it again succeeds.
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := m.Get(id)
	if err != nil {
		return err
	}
	if c.State != Running {
		if c.State == Created {
			// Never started: it cannot start any more.
			c.State, c.FinishedAt, c.Reason = Exited, time.Now(), "Completed"
			m.stopped(ctx, c)
			return m.save(c)
		}
		return nil
	}
	m.mu.RLock()
	done := m.exited[c.ID]
	m.mu.RUnlock()
	mon := monitor.Connect(c.MonitorDir)
	sig := syscall.SIGTERM
	if c.StopSignal != 0 {
		sig = syscall.Signal(c.StopSignal)
	}
	if timeout > 0 {
		if err := mon.Kill(c.ID, sig); err != nil && mon.Alive() {
			return fmt.Errorf("signal container %s: %w", c.ID, err)
		}
		select {
		case <-done:
			return nil
		case <-time.After(timeout):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := mon.Kill(c.ID, syscall.SIGKILL); err != nil && mon.Alive() {
		return fmt.Errorf("kill container %s: %w", c.ID, err)
	}
	if !mon.Alive() {
		// The monitor is gone (a reboot, or killed): so is the container.
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

// Remove stops a container if it runs and removes everything it made.
// Removing a removed container succeeds.
func (m *Manager) Remove(ctx context.Context, id string) error {
	c, err := m.Get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.Stop(ctx, c.ID, 0); err != nil {
		return err
	}
	unlock := m.ops.Lock(c.ID)
	defer unlock()
	if c, err = m.Get(c.ID); err != nil {
		return nil
	}
	if err := m.teardown(ctx, c); err != nil {
		return fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	if err := m.forget(c); err != nil {
		return err
	}
	m.publish(c, events.Deleted)
	if m.opts.Hooks.Removed != nil {
		m.opts.Hooks.Removed(ctx, c)
	}
	return nil
}

// teardown undoes what a container's record says was made.
func (m *Manager) teardown(ctx context.Context, c *Container) error {
	var errs []error
	m.watch.remove(c.ID)
	// Image volumes are detached before anything under the bundle is
	// removed: a removal must never walk into an image's layers.
	for i := range c.ImageVolumes {
		if err := unix.Unmount(c.imageVolumeDir(i), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount image volume %d: %w", i, err)
		}
	}
	if c.Mounted {
		if err := unix.Unmount(c.Rootfs(), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount rootfs: %w", err))
		}
	}
	if c.Cgroup != "" {
		if cg, err := m.opts.Cgroups.Manager(c.Cgroup); err == nil {
			errs = append(errs, cg.Destroy(ctx))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	errs = append(errs, os.RemoveAll(c.Bundle), os.RemoveAll(c.Layer))
	return errors.Join(errs...)
}

// ForSandbox lists a sandbox's containers.
func (m *Manager) ForSandbox(sandboxID string) []*Container {
	var out []*Container
	for _, c := range m.List() {
		if c.SandboxID == sandboxID {
			out = append(out, c)
		}
	}
	return out
}

func (m *Manager) load(ctx context.Context) error {
	var records []*Container
	err := m.opts.Store.ForEach(store.BucketContainers, func(key string, raw []byte) error {
		c := &Container{}
		if err := json.Unmarshal(raw, c); err != nil {
			return fmt.Errorf("decode container %s: %w", key, err)
		}
		records = append(records, c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load containers: %w", err)
	}
	for _, c := range records {
		if c.Creating {
			klog.InfoS("Cleaning up a container whose creation was interrupted", "container", c.ID)
			if err := m.teardown(ctx, c); err == nil {
				m.opts.Store.Delete(store.BucketContainers, c.ID)
				continue
			}
		}
		m.containers[c.ID] = c
		m.names[c.Key()] = c.ID
		if c.State != Running {
			continue
		}
		if e, ok, _ := monitor.ReadExit(c.Bundle); ok {
			m.recordExit(c, e)
			continue
		}
		if !monitor.Connect(c.MonitorDir).Alive() {
			// No monitor, no exit record: the node rebooted or the
			// monitor was killed; the container is gone with it.
			c.Message = "the container's monitor is gone (node reboot?): its exit is unknown"
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

// UpdateResources changes a container's cgroup limits in place, running
// or not yet started, and records them. It takes no per-container lock: an
// NRI plugin's answer to one container's create may resize another that
// is itself being created.
func (m *Manager) UpdateResources(id string, res *cgroups.Resources) error {
	c, err := m.Get(id)
	if err != nil {
		return err
	}
	if c.State == Exited {
		return fmt.Errorf("container %s has exited: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	cg, err := m.opts.Cgroups.Manager(c.Cgroup)
	if err != nil {
		return err
	}
	if err := cg.Update(res); err != nil {
		return fmt.Errorf("update resources of container %s: %w", c.ID, err)
	}
	// Only the limits change in the record: the rest of it may be
	// changing under its own lock at the same time.
	m.mu.Lock()
	cur, ok := m.containers[c.ID]
	if !ok {
		m.mu.Unlock()
		return nil
	}
	var applied cgroups.Resources
	if cur.Resources != nil {
		applied = *cur.Resources
	}
	applied = applied.With(res)
	cur.Resources = &applied
	rec := cur.copy()
	m.mu.Unlock()
	return m.opts.Store.Put(store.BucketContainers, rec.ID, rec)
}

// ReopenLog reopens a running container's log file.
func (m *Manager) ReopenLog(id string) error {
	c, err := m.Get(id)
	if err != nil {
		return err
	}
	if c.State != Running {
		return fmt.Errorf("container %s is %s: only a running container's log can be reopened: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	return monitor.Connect(c.MonitorDir).Reopen(c.ID)
}

// StopAll stops every container of a sandbox, killing them at once: the
// kubelet has stopped them gracefully before it stops the sandbox.
func (m *Manager) StopAll(ctx context.Context, sandboxID string) error {
	var errs []error
	for _, c := range m.ForSandbox(sandboxID) {
		errs = append(errs, m.Stop(ctx, c.ID, 0))
	}
	return errors.Join(errs...)
}

// RemoveAll removes every container of a sandbox (its monitor is the
// sandbox's to end).
func (m *Manager) RemoveAll(ctx context.Context, sandboxID string) error {
	var errs []error
	for _, c := range m.ForSandbox(sandboxID) {
		errs = append(errs, m.Remove(ctx, c.ID))
	}
	return errors.Join(errs...)
}
