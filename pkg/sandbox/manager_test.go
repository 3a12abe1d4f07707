package sandbox

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/crid-dev/crid/pkg/cgroups/cgroupstest"
	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/store"
)

// These tests drive the manager through fakes of the node (network,
// monitors, cgroups, kernel): every path, failures and unwinds included,
// without root. The integration tests run the same paths for real.

type node struct {
	mu                                              sync.Mutex
	attached                                        map[string]bool // pod ID -> an ADD not undone by a DEL
	adds                                            int
	attachErr, nsErr, shmErr, sysctlErr, monitorErr error
	pins                                            map[string]bool // pinned namespace files
	shm                                             map[string]bool
	monitors                                        map[string]bool
	*cgroupstest.Hierarchy
	gcKept []string
	holds  bool // Kernel.Holds answers
	// synced answers whether the records are on the disk; syncedAtAdd is
	// its answer at each ADD.
	synced      func() bool
	syncedAtAdd []bool
}

func newNode() *node {
	return &node{attached: map[string]bool{}, pins: map[string]bool{}, shm: map[string]bool{},
		monitors: map[string]bool{}, Hierarchy: cgroupstest.New(), holds: true}
}

func (n *node) Attach(_ context.Context, p cni.Pod) (*cni.Attachment, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.adds++
	if n.synced != nil {
		n.syncedAtAdd = append(n.syncedAtAdd, n.synced())
	}
	// A failed ADD may have done part of its work: the DEL is owed.
	n.attached[p.ID] = true
	if n.attachErr != nil {
		return nil, n.attachErr
	}
	return &cni.Attachment{Network: "crid", IPs: []net.IP{net.IPv4(10, 88, 0, byte(n.adds))}}, nil
}

func (n *node) Detach(_ context.Context, p cni.Pod) error {
	n.mu.Lock()
	delete(n.attached, p.ID)
	n.mu.Unlock()
	return nil
}

func (n *node) Check(context.Context, cni.Pod) error { return nil }

func (n *node) GC(_ context.Context, keep []string) error {
	n.mu.Lock()
	n.gcKept = slices.Clone(keep)
	for id := range n.attached {
		if !slices.Contains(keep, id) {
			delete(n.attached, id)
		}
	}
	n.mu.Unlock()
	return nil
}

func (n *node) Ensure(_ context.Context, dir string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.monitorErr != nil {
		return n.monitorErr
	}
	n.monitors[dir] = true
	return nil
}

func (n *node) Shutdown(_ context.Context, dir string) error {
	n.mu.Lock()
	delete(n.monitors, dir)
	n.mu.Unlock()
	return nil
}

func (n *node) MakeNamespaces(_ context.Context, s *Sandbox) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	dir := filepath.Join(s.Dir, "ns")
	if !s.Spec.HostNetwork {
		s.NS.Net, s.NS.UTS = filepath.Join(dir, "net"), filepath.Join(dir, "uts")
	}
	if !s.Spec.HostIPC {
		s.NS.IPC = filepath.Join(dir, "ipc")
	}
	// Pinning fails halfway: what was pinned is named, as pinThread does.
	for _, p := range []string{s.NS.Net, s.NS.UTS} {
		if p != "" {
			n.pins[p] = true
		}
	}
	if n.nsErr != nil {
		return n.nsErr
	}
	if s.NS.IPC != "" {
		n.pins[s.NS.IPC] = true
	}
	return nil
}

func (n *node) Unpin(ns Namespaces) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range []string{ns.Net, ns.IPC, ns.UTS, ns.PID, ns.User} {
		delete(n.pins, p)
	}
	return nil
}

func (n *node) Holds(*Sandbox) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.holds
}

func (n *node) KillInfra(context.Context, *Sandbox) error { return nil }

func (n *node) MountShm(dir string, _ int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shmErr != nil {
		return n.shmErr
	}
	n.shm[dir] = true
	return nil
}

func (n *node) RemoveDir(dir string) error { return os.RemoveAll(dir) }

func (n *node) UnmountShm(dir string) error {
	n.mu.Lock()
	delete(n.shm, dir)
	n.mu.Unlock()
	return nil
}

func (n *node) ApplySysctls(*Sandbox) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sysctlErr
}

type fixture struct {
	*Manager
	n   *node
	dir string
	st  *store.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{n: newNode(), dir: t.TempDir()}
	f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	st, err := store.Open(filepath.Join(f.dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(t.Context(), Options{RunRoot: filepath.Join(f.dir, "run"), Store: st,
		Cgroups: f.n, CNI: f.n, Monitors: f.n, Kernel: f.n})
	if err != nil {
		t.Fatal(err)
	}
	f.Manager, f.st = m, st
	f.n.synced = st.Synced
	t.Cleanup(func() { st.Close() })
}

// restart is crid killed and started again over the same state.
func (f *fixture) restart(t *testing.T) {
	t.Helper()
	f.st.Close()
	f.open(t)
}

func podSpec(name string) Spec {
	return Spec{Name: name, Namespace: "default", UID: "uid-" + name, Hostname: name,
		DNS: &DNS{Servers: []string{"10.96.0.10"}}}
}

func (f *fixture) run(t *testing.T, spec Spec) *Sandbox {
	t.Helper()
	s, err := f.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = f.Commit(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

// leftovers is what of pods the node still has.
func (f *fixture) leftovers(t *testing.T) []string {
	t.Helper()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	var out []string
	for id := range f.n.attached {
		out = append(out, "attachment "+id)
	}
	for p := range f.n.pins {
		out = append(out, "pin "+p)
	}
	for p := range f.n.shm {
		out = append(out, "shm "+p)
	}
	for p := range f.n.monitors {
		out = append(out, "monitor "+p)
	}
	for _, p := range f.n.Made() {
		out = append(out, "cgroup "+p)
	}
	entries, _ := os.ReadDir(filepath.Join(f.dir, "run", "sandboxes"))
	for _, e := range entries {
		out = append(out, "dir "+e.Name())
	}
	f.st.ForEach(store.BucketSandboxes, func(key string, _ []byte) error {
		out = append(out, "record "+key)
		return nil
	})
	slices.Sort(out)
	return out
}

func TestPreparedSandboxIsInvisibleUntilCommitted(t *testing.T) {
	f := newFixture(t)
	s, err := f.Prepare(t.Context(), podSpec("web"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Get(s.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get of a prepared sandbox: %v", err)
	}
	if len(f.List()) != 0 {
		t.Error("a prepared sandbox is listed")
	}
	if len(s.IPs) != 1 || !f.n.attached[s.ID] || !f.n.monitors[s.MonitorDir()] || !f.n.shm[s.ShmPath()] {
		t.Errorf("prepared: ips %v, attached %v, monitor %v, shm %v", s.IPs, f.n.attached[s.ID], f.n.monitors[s.MonitorDir()], f.n.shm[s.ShmPath()])
	}
	hosts, _ := os.ReadFile(s.HostsPath())
	if !strings.Contains(string(hosts), s.IPs[0]+"\tweb") {
		t.Errorf("hosts: %q", hosts)
	}
	if got, err := f.Commit(t.Context(), s); err != nil || got.State != Ready {
		t.Fatalf("Commit: %v %v", got, err)
	}
	if _, err := f.Get(s.ID); err != nil {
		t.Errorf("Get once committed: %v", err)
	}
	if _, err := f.Commit(t.Context(), s); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("a second Commit: %v", err)
	}
	if _, err := f.Prepare(t.Context(), podSpec("web")); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), s.ID) {
		t.Errorf("a second pod of one name and attempt: %v", err)
	}
}

func TestRecordsShareNothingWithCallers(t *testing.T) {
	f := newFixture(t)
	spec := podSpec("web")
	spec.Labels = map[string]string{"app": "web"}
	s := f.run(t, spec)
	spec.Labels["app"] = "changed by the caller after the call"
	s.Spec.Labels["app"] = "changed in a returned copy"
	s.Spec.DNS.Servers[0] = "changed"
	got, _ := f.Get(s.ID)
	if got.Spec.Labels["app"] != "web" || got.Spec.DNS.Servers[0] != "10.96.0.10" {
		t.Errorf("the record changed through a copy: %+v", got.Spec)
	}
}

// Every way a RunPodSandbox can fail leaves nothing behind, the CNI DEL of
// an ADD that failed halfway included.
func TestFailedRunLeavesNothing(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		setup   func(*node, *Spec)
		abandon bool // Prepare succeeds and the caller (NRI) abandons it
	}{
		{"namespaces fail halfway", func(n *node, _ *Spec) { n.nsErr = boom }, false},
		{"CNI ADD fails", func(n *node, _ *Spec) { n.attachErr = boom }, false},
		{"cgroup fails", func(n *node, _ *Spec) { n.SetCreateErr(boom) }, false},
		{"shm fails", func(n *node, _ *Spec) { n.shmErr = boom }, false},
		{"sysctl refused", func(n *node, _ *Spec) { n.sysctlErr = boom }, false},
		{"monitor fails", func(n *node, _ *Spec) { n.monitorErr = boom }, false},
		{"invalid sysctl", func(_ *node, s *Spec) { s.Sysctls = map[string]string{"kernel.panic": "1"} }, false},
		{"a plugin refuses it", func(*node, *Spec) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			spec := podSpec("web")
			spec.CgroupParent = "" // crid's own cgroup, made and removed by it
			tt.setup(f.n, &spec)
			s, err := f.Prepare(t.Context(), spec)
			if tt.abandon {
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Abandon(t.Context(), s.ID); err != nil {
					t.Fatal(err)
				}
			} else if err == nil {
				t.Fatal("Prepare succeeded")
			}
			if left := f.leftovers(t); len(left) != 0 {
				t.Errorf("left: %v", left)
			}
			*f.n = *newNode()
			f.run(t, podSpec("web")) // the name is free again
		})
	}
}

func TestStopKeepsPinsAndRemoveTakesAll(t *testing.T) {
	f := newFixture(t)
	s := f.run(t, podSpec("web"))
	for range 2 {
		if err := f.Stop(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := f.Get(s.ID)
	if got.State != NotReady || f.n.attached[s.ID] {
		t.Errorf("after stop: %s, attached %v", got.State, f.n.attached[s.ID])
	}
	if !f.n.pins[got.NS.Net] {
		t.Error("stop unpinned the namespaces: a status call after it finds none")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() { errs <- f.Remove(t.Context(), s.ID) })
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
	if err := f.Remove(t.Context(), s.ID); err != nil {
		t.Errorf("removing a removed sandbox: %v", err)
	}
}

// A pod's records are left to the page cache (a crash of crid keeps
// them; all a power loss could take, the reboot ends) but for the plan of
// a pod with a network: the ADD's leases outlive a reboot, so the plan
// that tells start-up to DEL them is on the disk first.
func TestPodRecordsAreSyncedBeforeTheNetworkOnly(t *testing.T) {
	f := newFixture(t)
	host := podSpec("host")
	host.HostNetwork = true
	f.run(t, host)
	if f.st.Synced() {
		t.Error("a host-network pod's RunPodSandbox synced its records")
	}
	f.run(t, podSpec("net"))
	if !slices.Equal(f.n.syncedAtAdd, []bool{true}) {
		t.Errorf("the records were synced at each ADD: %v, want [true]", f.n.syncedAtAdd)
	}
}

func TestHostNetworkPodHasNoAttachment(t *testing.T) {
	f := newFixture(t)
	spec := podSpec("host")
	spec.HostNetwork, spec.HostIPC = true, true
	s := f.run(t, spec)
	if f.n.adds != 0 || s.Attached || s.NS.Net != "" || s.ShmMounted {
		t.Errorf("host pod: adds %d, attached %v, netns %q, shm %v", f.n.adds, s.Attached, s.NS.Net, s.ShmMounted)
	}
	if err := f.Remove(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

func TestStartUpSettlesWhatCrashesAndRestartsLeft(t *testing.T) {
	f := newFixture(t)
	kept := f.run(t, podSpec("kept"))
	half, err := f.Prepare(t.Context(), podSpec("half"))
	if err != nil {
		t.Fatal(err)
	}
	// A crash before the first record: a directory no record names.
	stray := filepath.Join(f.dir, "run", "sandboxes", "stray")
	os.MkdirAll(filepath.Join(stray, "ns"), 0o711)
	f.n.attached["gone"] = true // the CNI cache of a pod no record names

	f.restart(t)
	if _, err := f.Get(kept.ID); err != nil {
		t.Fatalf("the ready pod is lost: %v", err)
	}
	for _, l := range f.leftovers(t) {
		if strings.Contains(l, half.ID) || strings.Contains(l, "stray") || strings.Contains(l, "gone") {
			t.Errorf("start-up left %s", l)
		}
	}
	if !slices.Equal(f.n.gcKept, []string{kept.ID}) {
		t.Errorf("CNI GC kept %v, want only %s", f.n.gcKept, kept.ID)
	}

	// The pod's namespaces did not survive (a kill of its infra process):
	// it is not ready any more, and removes cleanly.
	f.n.holds = false
	f.restart(t)
	if got, _ := f.Get(kept.ID); got.State != NotReady {
		t.Errorf("a pod that lost its namespaces is %s", got.State)
	}
	if err := f.Remove(t.Context(), kept.ID); err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}
