package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/cgroups/cgroupstest"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/records"
	"github.com/crid-dev/crid/pkg/store"
)

// These tests drive the manager through fakes of the node (monitors,
// mounts, layers, cgroups): every path, failures and unwinds included,
// without root. The integration tests run the same paths for real.

// node is the fakes one manager runs against, and what they saw.
type node struct {
	mu       sync.Mutex
	mounts   map[string]bool // mounted targets
	mountErr map[int]error   // the nth Mount (from 1) fails
	nMounts  int
	held     map[string][]string
	*cgroupstest.Hierarchy
	starts   []monitor.Request
	dead     map[string]bool // containers whose exit the monitor wrote
	startErr error
	alive    bool
	// exitOn is the exit code the fake monitor records on a signal (-1:
	// the container ignores it).
	exitOn map[syscall.Signal]int
}

func newNode() *node {
	return &node{mounts: map[string]bool{}, mountErr: map[int]error{}, held: map[string][]string{},
		Hierarchy: cgroupstest.New(), alive: true, dead: map[string]bool{},
		exitOn: map[syscall.Signal]int{syscall.SIGTERM: 143, syscall.SIGKILL: 137}}
}

func (n *node) Mount(target string, lowers []string, upper, work, userns string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nMounts++
	if err := n.mountErr[n.nMounts]; err != nil {
		return err
	}
	n.mounts[target] = true
	return nil
}

func (n *node) Unmount(target string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.mounts, target)
	return nil
}

func (n *node) LayerDirs(img *image.Image) []string {
	var out []string
	for _, l := range img.Layers {
		out = append(out, "/layers/"+l.ChainID)
	}
	return out
}

func (n *node) Hold(owner string, chainIDs []string) {
	n.mu.Lock()
	n.held[owner] = chainIDs
	n.mu.Unlock()
}

func (n *node) Release(owner string) {
	n.mu.Lock()
	delete(n.held, owner)
	n.mu.Unlock()
}

func (n *node) Ensure(ctx context.Context, dir string) (Monitor, error) { return n.Connect(dir), nil }
func (n *node) Connect(dir string) Monitor                              { return fakeMonitor{n} }

type fakeMonitor struct{ n *node }

func (m fakeMonitor) Alive(context.Context) bool {
	m.n.mu.Lock()
	defer m.n.mu.Unlock()
	return m.n.alive
}

func (m fakeMonitor) Start(_ context.Context, req monitor.Request) (int, error) {
	m.n.mu.Lock()
	defer m.n.mu.Unlock()
	if m.n.startErr != nil {
		return 0, m.n.startErr
	}
	m.n.starts = append(m.n.starts, req)
	return 4000 + len(m.n.starts), nil
}

func (m fakeMonitor) Pid(_ context.Context, id string) (int, error) {
	m.n.mu.Lock()
	defer m.n.mu.Unlock()
	for i, r := range m.n.starts {
		if r.ID == id && m.n.alive {
			return 4001 + i, nil
		}
	}
	return 0, errdefs.ErrNotFound
}

// Kill plays the monitor: the container dies of sig, and the monitor
// records the exit in the bundle, once, as crid-monitor does; a signal to
// a dead container is no error.
func (m fakeMonitor) Kill(_ context.Context, id string, sig syscall.Signal) error {
	m.n.mu.Lock()
	defer m.n.mu.Unlock()
	code, ok := m.n.exitOn[sig]
	var bundle string
	for _, r := range m.n.starts {
		if r.ID == id {
			bundle = r.Bundle
		}
	}
	if !ok || code < 0 || bundle == "" || m.n.dead[id] {
		return nil
	}
	m.n.dead[id] = true
	return monitor.WriteExit(bundle, monitor.Exit{ExitCode: code, Signal: int(sig), FinishedAt: time.Now()})
}

// exit plays a container that ends by itself.
func (n *node) exit(t *testing.T, c *Container, code int) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dead[c.ID] = true
	if err := monitor.WriteExit(c.Bundle, monitor.Exit{ExitCode: code, FinishedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func (m fakeMonitor) Reopen(context.Context, string) error { return nil }

type fixture struct {
	*Manager
	n      *node
	dir    string
	st     *store.Store
	events <-chan events.Event
	// What the manager is opened with besides the fakes.
	ctx        context.Context
	metrics    *metrics.Metrics
	throttling Throttling
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{n: newNode(), dir: t.TempDir()}
	f.open(t)
	return f
}

// open starts a manager over the fixture's state, as crid starts.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	st, err := store.Open(filepath.Join(f.dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	broker := events.New()
	ch, _ := broker.Subscribe()
	ctx := f.ctx
	if ctx == nil {
		ctx = t.Context()
	}
	m, err := New(ctx, Options{
		Root: filepath.Join(f.dir, "root"), RunRoot: filepath.Join(f.dir, "run"), Store: st,
		Cgroups: f.n, Layers: f.n, Monitors: f.n, RootFS: f.n, Events: broker,
		Metrics: f.metrics, Throttling: f.throttling,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Manager, f.st, f.events = m, st, ch
	t.Cleanup(func() { m.Close(); st.Close() })
}

// restart stops the manager (crid is killed: nothing is undone) and opens
// a new one over the same state. Layer holds are crid's memory: gone.
func (f *fixture) restart(t *testing.T) {
	t.Helper()
	f.Manager.Close()
	f.st.Close()
	f.n.mu.Lock()
	f.n.held = map[string][]string{}
	f.n.mu.Unlock()
	f.open(t)
}

var testImage = &image.Image{ID: "sha256:img", Layers: []image.Layer{{ChainID: "sha256:l1"}, {ChainID: "sha256:l2"}}}

func params(name string) CreateParams {
	return CreateParams{
		SandboxID: "pod1", SandboxCgroup: "/crid/pod1", MonitorDir: "/nonexistent/monitor",
		Name: name, Image: testImage, ImageName: "img:1",
		Resources: &cgroups.Resources{CPUShares: 512, MemoryLimit: 64 << 20},
	}
}

func spec() *specs.Spec {
	return &specs.Spec{Process: &specs.Process{User: specs.User{UID: 1000, GID: 1000}}, Linux: &specs.Linux{}}
}

// create prepares and commits a container, as CreateContainer does.
func (f *fixture) create(t *testing.T, name string) *Container {
	t.Helper()
	d, err := f.Prepare(t.Context(), params(name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Commit(t.Context(), d.Container.ID, spec(), d.Container.Resources)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// next is the next event the manager published.
func (f *fixture) next(t *testing.T) events.Event {
	t.Helper()
	select {
	case e := <-f.events:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return events.Event{}
}

// leftovers is what of containers the node still has.
func (f *fixture) leftovers(t *testing.T) []string {
	t.Helper()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	var out []string
	for m := range f.n.mounts {
		out = append(out, "mount "+m)
	}
	for _, c := range f.n.Made() {
		out = append(out, "cgroup "+c)
	}
	for h := range f.n.held {
		out = append(out, "layer hold "+h)
	}
	for _, d := range []string{"run/containers", "root/containers"} {
		entries, _ := os.ReadDir(filepath.Join(f.dir, d))
		for _, e := range entries {
			out = append(out, d+"/"+e.Name())
		}
	}
	f.st.ForEach(store.BucketContainers, func(key string, _ []byte) error {
		out = append(out, "record "+key)
		return nil
	})
	slices.Sort(out)
	return out
}

func TestPreparedContainerIsInvisibleUntilCommitted(t *testing.T) {
	f := newFixture(t)
	d, err := f.Prepare(t.Context(), params("app"))
	if err != nil {
		t.Fatal(err)
	}
	id := d.Container.ID
	if _, err := f.Get(id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get of a prepared container: %v", err)
	}
	if len(f.List()) != 0 {
		t.Error("a prepared container is listed")
	}
	if got := f.ForSandbox("pod1"); len(got) != 1 {
		t.Errorf("ForSandbox misses a prepared container: %d", len(got))
	}
	if !f.n.mounts[d.Container.Rootfs()] {
		t.Error("the root is not mounted after Prepare")
	}
	if got := f.n.held[id]; !slices.Equal(got, []string{"sha256:l1", "sha256:l2"}) {
		t.Errorf("layers held: %v", got)
	}
	if f.n.Limits(d.Container.Cgroup) != nil {
		t.Error("the cgroup is made before the limits are final")
	}
	if err := f.UpdateResources(t.Context(), id, &cgroups.Resources{CPUShares: 2}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("a resize of a container being created: %v", err)
	}

	// An NRI plugin changed the limits: Commit makes the cgroup with them.
	final := &cgroups.Resources{CPUShares: 1024, MemoryLimit: 32 << 20}
	c, err := f.Commit(t.Context(), id, spec(), final)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.n.Limits(c.Cgroup); got == nil || got.CPUShares != 1024 || got.MemoryLimit != 32<<20 {
		t.Errorf("cgroup made with %+v", got)
	}
	if c.UID != 1000 || c.Resources.CPUShares != 1024 {
		t.Errorf("committed record: uid %d, resources %+v", c.UID, c.Resources)
	}
	if _, err := os.Stat(c.SpecFile()); err != nil {
		t.Errorf("no spec in the bundle: %v", err)
	}
	if e := f.next(t); e.Type != events.Created || e.ContainerID != id {
		t.Errorf("event %+v", e)
	}
	if _, err := f.Get(id); err != nil {
		t.Errorf("Get once committed: %v", err)
	}
	if _, err := f.Commit(t.Context(), id, spec(), final); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("a second Commit: %v", err)
	}
}

func TestNameIsReservedPerPodAndAttempt(t *testing.T) {
	f := newFixture(t)
	first := f.create(t, "app")
	_, err := f.Prepare(t.Context(), params("app"))
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), first.ID) {
		t.Fatalf("second create of a name: %v", err)
	}
	again := params("app")
	again.Attempt = 1
	if _, err := f.Prepare(t.Context(), again); err != nil {
		t.Errorf("the next attempt: %v", err)
	}
	if err := f.Remove(t.Context(), first.ID); err != nil {
		t.Fatal(err)
	}
	f.create(t, "app")
}

// Every way a create can fail leaves nothing: each step's failure, and an
// abandon after a plugin refused it.
func TestFailedCreateLeavesNothing(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		setup func(*node, *CreateParams)
		// commit is whether the create reaches Commit; abandon, whether
		// the caller abandons it after (an NRI refusal).
		commit, abandon bool
	}{
		{"root mount fails", func(n *node, _ *CreateParams) { n.mountErr[1] = boom }, false, false},
		{"image volume mount fails", func(n *node, p *CreateParams) {
			n.mountErr[2] = boom
			p.ImageVolumes = map[int]ImageVolume{0: {Image: testImage}}
		}, false, false},
		{"image volume sub-path outside it", func(n *node, p *CreateParams) {
			p.ImageVolumes = map[int]ImageVolume{0: {Image: testImage, SubPath: "no/such/dir"}}
		}, false, false},
		{"a plugin refuses it", func(*node, *CreateParams) {}, false, true},
		{"cgroup fails", func(n *node, _ *CreateParams) { n.SetCreateErr(boom) }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			p := params("app")
			tt.setup(f.n, &p)
			d, err := f.Prepare(t.Context(), p)
			if !tt.commit && !tt.abandon {
				if err == nil {
					t.Fatal("Prepare succeeded")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if tt.commit {
					if _, err := f.Commit(t.Context(), d.Container.ID, spec(), p.Resources); err == nil {
						t.Fatal("Commit succeeded")
					}
				}
				if err := f.Abandon(t.Context(), d.Container.ID); err != nil {
					t.Fatal(err)
				}
			}
			if left := f.leftovers(t); len(left) != 0 {
				t.Errorf("left: %v", left)
			}
			f.n.SetCreateErr(nil)
			f.create(t, "app") // the name is free again
		})
	}
}

func TestCrashDuringCreateIsUndoneAtStartUp(t *testing.T) {
	f := newFixture(t)
	kept := f.create(t, "kept")
	half, err := f.Prepare(t.Context(), params("half"))
	if err != nil {
		t.Fatal(err)
	}
	f.restart(t) // crid killed between Prepare and Commit
	if got := f.ForSandbox("pod1"); len(got) != 1 || got[0].ID != kept.ID {
		t.Fatalf("after restart: %d containers", len(got))
	}
	for _, l := range f.leftovers(t) {
		if strings.Contains(l, half.Container.ID) {
			t.Errorf("the interrupted create left %s", l)
		}
	}
	if err := f.Remove(t.Context(), kept.ID); err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

func TestStartStopRemove(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, "app")
	f.next(t) // created
	started, err := f.Start(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if started.State != Running || started.Pid == 0 {
		t.Fatalf("started: %+v", started)
	}
	if e := f.next(t); e.Type != events.Started {
		t.Errorf("event %+v", e)
	}
	if _, err := f.Start(t.Context(), c.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("a second start: %v", err)
	}
	if err := f.UpdateResources(t.Context(), c.ID, &cgroups.Resources{CPUShares: 2048}); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Get(c.ID); got.Resources.CPUShares != 2048 || got.Resources.MemoryLimit != 64<<20 {
		t.Errorf("after a resize: %+v", got.Resources)
	}
	if err := f.Stop(t.Context(), c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	got, _ := f.Get(c.ID)
	if got.State != Exited || got.ExitCode != 143 || got.Reason != "Error" {
		t.Errorf("after stop: %s %d %s", got.State, got.ExitCode, got.Reason)
	}
	if e := f.next(t); e.Type != events.Stopped {
		t.Errorf("event %+v", e)
	}
	if err := f.Stop(t.Context(), c.ID, time.Second); err != nil {
		t.Errorf("stopping a stopped container: %v", err)
	}
	if err := f.UpdateResources(t.Context(), c.ID, &cgroups.Resources{CPUShares: 2}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("a resize of an exited container: %v", err)
	}
	if err := f.Remove(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	if e := f.next(t); e.Type != events.Deleted {
		t.Errorf("event %+v", e)
	}
	if err := f.Remove(t.Context(), c.ID); err != nil {
		t.Errorf("removing a removed container: %v", err)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

func TestStopKillsAContainerThatIgnoresItsSignal(t *testing.T) {
	f := newFixture(t)
	f.n.exitOn[syscall.SIGTERM] = -1
	c := f.create(t, "stubborn")
	if _, err := f.Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.Stop(t.Context(), c.ID, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("SIGKILL after %v, before the timeout", took)
	}
	if got, _ := f.Get(c.ID); got.ExitCode != 137 {
		t.Errorf("exit code %d, want 137", got.ExitCode)
	}
}

func TestExitsAreRecordedOnceWhoeverFindsThem(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, "app")
	f.next(t)
	if _, err := f.Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	f.next(t)
	os.WriteFile(c.TerminationLog(), []byte("bye"), 0o644)
	// The container exits by itself: the watcher and a Stop race for it.
	f.n.exit(t, c, 0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { f.Stop(t.Context(), c.ID, time.Second) })
	}
	wg.Wait()
	if e := f.next(t); e.Type != events.Stopped {
		t.Fatalf("event %+v", e)
	}
	select {
	case e := <-f.events:
		t.Errorf("a second event for one exit: %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
	got, _ := f.Get(c.ID)
	if got.State != Exited || got.Reason != "Completed" || got.Message != "bye" {
		t.Errorf("after exit: %s %s %q", got.State, got.Reason, got.Message)
	}
}

func TestFailedStartsEndTheContainer(t *testing.T) {
	f := newFixture(t)
	f.n.startErr = errors.New("exec: no such file")
	c := f.create(t, "broken")
	if _, err := f.Start(t.Context(), c.ID); err == nil {
		t.Fatal("start succeeded")
	}
	got, _ := f.Get(c.ID)
	if got.State != Exited || got.Reason != "StartError" || got.ExitCode != 128 || !strings.Contains(got.Message, "no such file") {
		t.Errorf("after a failed start: %+v", got)
	}
	if err := f.Stop(t.Context(), c.ID, time.Second); err != nil {
		t.Errorf("stop after a failed start: %v", err)
	}

	// A plugin's refusal ends a container the same way.
	f.n.startErr = nil
	refused := f.create(t, "refused")
	if err := f.FailStart(t.Context(), refused.ID, errors.New("plugin says no")); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Get(refused.ID); got.Reason != "StartError" || got.Message != "plugin says no" {
		t.Errorf("after a refusal: %+v", got)
	}
	if _, err := f.Start(t.Context(), refused.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("start after a refusal: %v", err)
	}
}

func TestStopOfACreatedContainerEndsIt(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, "never")
	if err := f.Stop(t.Context(), c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Get(c.ID); got.State != Exited || got.Reason != "Completed" {
		t.Errorf("%s %s", got.State, got.Reason)
	}
	if _, err := f.Start(t.Context(), c.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("start after stop: %v", err)
	}
}

func TestRestartFindsContainersAsTheyAre(t *testing.T) {
	f := newFixture(t)
	running := f.create(t, "running")
	exitedMeanwhile := f.create(t, "exits")
	lost := f.create(t, "lost")
	for _, c := range []*Container{running, exitedMeanwhile, lost} {
		if _, err := f.Start(t.Context(), c.ID); err != nil {
			t.Fatal(err)
		}
	}
	// While crid is down, one exits; then the monitor of another goes.
	f.Manager.Close()
	f.n.exit(t, exitedMeanwhile, 3)
	f.restart(t)
	if got, _ := f.Get(running.ID); got.State != Running {
		t.Errorf("running: %s", got.State)
	}
	if got, _ := f.Get(exitedMeanwhile.ID); got.State != Exited || got.ExitCode != 3 {
		t.Errorf("exited while crid was down: %s %d", got.State, got.ExitCode)
	}
	if got := f.n.held[running.ID]; len(got) != 2 {
		t.Errorf("a loaded container holds %v", got)
	}
	f.n.mu.Lock()
	f.n.alive = false
	f.n.mu.Unlock()
	f.restart(t)
	got, _ := f.Get(lost.ID)
	if got.State != Exited || got.ExitCode != 255 || !strings.Contains(got.Message, "monitor is gone") {
		t.Errorf("a container whose monitor is gone: %s %d %q", got.State, got.ExitCode, got.Message)
	}
}

// StartContainer writes no record before it asks the monitor: a crash
// after the monitor started the container and before crid recorded it
// leaves a created record, which start-up resolves by asking the monitor.
func TestRestartResolvesAStartCutShort(t *testing.T) {
	f := newFixture(t)
	cut := f.create(t, "cut")
	never := f.create(t, "never")
	// crid asked the monitor, then died before its record.
	pid, err := f.n.Connect(cut.MonitorDir).Start(t.Context(), monitor.Request{ID: cut.ID, Bundle: cut.Bundle})
	if err != nil {
		t.Fatal(err)
	}
	f.Manager.Close()
	f.restart(t)
	if got, _ := f.Get(cut.ID); got.State != Running || got.Pid != pid || got.StartedAt.IsZero() {
		t.Errorf("a start the monitor ran: %s, pid %d (want %d), started %v", got.State, got.Pid, pid, got.StartedAt)
	}
	if got, _ := f.Get(never.ID); got.State != Created {
		t.Errorf("a container never started: %s", got.State)
	}
	// The kubelet's retry of the start that was cut short.
	if _, err := f.Start(t.Context(), cut.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("a retried start of a running container: %v", err)
	}
	if _, err := f.Start(t.Context(), never.ID); err != nil {
		t.Errorf("the start of the other: %v", err)
	}
}

func TestConcurrentRemovesAllSucceed(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, "app")
	if _, err := f.Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- f.Remove(t.Context(), c.ID) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a concurrent remove: %v", err)
		}
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

// BenchmarkList is the kubelet's relist of a full node: 750 containers,
// each with the labels, annotations and raw request the kubelet sends.
func BenchmarkList(b *testing.B) {
	st, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	set := records.New[Container](st, store.BucketContainers, "container")
	raw := []byte(`{"metadata":{"name":"app"},"image":{"image":"registry.k8s.io/app:1"},"command":["/app"],"envs":[` +
		strings.Repeat(`{"key":"SOME_VARIABLE","value":"some value of a typical length"},`, 30) + `{}]}`)
	for i := range 750 {
		c := &Container{ID: fmt.Sprintf("%064d", i), SandboxID: "pod", Name: fmt.Sprint("c", i), State: Running,
			Labels:      map[string]string{"io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.container.name": "app"},
			Annotations: map[string]string{"io.kubernetes.container.hash": "abc", "io.kubernetes.container.restartCount": "0"},
			Raw:         raw, ChainIDs: []string{"sha256:a", "sha256:b"}}
		unlock, err := set.Reserve(c)
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
	for _, tc := range []struct {
		name string
		list func() []*Container
	}{{"copies", set.ListVisible}, {"shared", set.Shared}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(tc.list()) != 750 {
					b.Fatal("short list")
				}
			}
		})
	}
	// One pod's three containers (a pod's stop, removal, stats).
	b.Run("one pod's", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if len(set.Matching(func(c *Container) bool { return c.Name == "c7" || c.Name == "c8" || c.Name == "c9" })) != 3 {
				b.Fatal("not the pod's three")
			}
		}
	})
	// A sum over the node (the list budget's), under the read lock.
	b.Run("each", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			set.Each(func(*Container) { n++ })
			if n != 750 {
				b.Fatal("short sum")
			}
		}
	})
}
