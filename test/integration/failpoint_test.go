package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/test/harness"
)

// midChain is the walk's point inside the CNI chain: the test's last
// plugin kills crid during an ADD, after bridge, portmap and firewall
// made their parts and before libcni cached the result.
const midChain = "cni.add.mid-chain"

// TestEveryFailpointLeavesNothing walks every point where crid may die
// in a pod's life as the kubelet drives it (RunPodSandbox, CreateContainer,
// StartContainer, StopContainer, RemoveContainer, StopPodSandbox,
// RemovePodSandbox, PullImage and RemoveImage with its layer collection):
// a crid built with the failpoints tag is killed there
// (SIGKILL), started again, and the call retried as the kubelet would (it
// lists what exists first); then everything is removed, and what is left
// is counted: mounts and pinned namespaces, veths, the chain's iptables
// rules, IP leases, cgroups, records (pods, containers, images, layers),
// state files and layer directories, and processes. Zero of each, at
// every point.
func TestEveryFailpointLeavesNothing(t *testing.T) {
	harness.RequireRoot(t)
	bin, err := harness.Build("../..", t.TempDir(), "failpoints")
	if err != nil {
		t.Fatal(err)
	}
	plugins := crashPlugin(t)
	reg := harness.StartRegistry(t, "", "")
	image := reg.Addr + "/busybox:it"
	harness.PushBusybox(t, image)

	// The trace run: every point the sequence passes, in order.
	w := newWalk(t, bin, plugins, image, 35)
	trace := filepath.Join(t.TempDir(), "trace")
	w.start(t, "CRID_FAILPOINT_TRACE="+trace)
	w.sequence(t)
	w.removeAll(t)
	w.d.Stop(t, syscall.SIGTERM)
	raw, err := os.ReadFile(trace)
	if err != nil {
		t.Fatalf("the trace run reached no failpoint: %v", err)
	}
	var points []string
	for _, p := range strings.Fields(string(raw)) {
		if !slices.Contains(points, p) {
			points = append(points, p)
		}
	}
	points = append(points, midChain)
	if left := w.leftovers(t); len(left) > 0 {
		t.Fatalf("the run without a crash left %v", left)
	}

	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			w := newWalk(t, bin, plugins, image, 35)
			env := []string{"CRID_FAILPOINT=" + point}
			if point == midChain {
				os.WriteFile(w.trigger, nil, 0o644)
				env = nil
			}
			w.start(t, env...)
			w.sequence(t)
			if w.crashes == 0 {
				t.Errorf("crid never died at %s", point)
			}
			w.removeAll(t)
			// A start after the removal finds nothing to list.
			w.restart(t)
			w.d.Stop(t, syscall.SIGTERM)
			if left := w.leftovers(t); len(left) > 0 {
				t.Errorf("after a crash at %s and the removal of everything: %v\ncrid's log:\n%s", point, left, w.logs.String())
			}
		})
	}
	t.Logf("%d failpoints walked", len(points))
}

// crashPlugin builds the walk's CNI plugin (./crashplugin) into a
// directory of its own, and answers with the directory.
func crashPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "crashplugin"), "./crashplugin").CombinedOutput(); err != nil {
		t.Fatalf("build the crash plugin: %v\n%s", err, out)
	}
	return dir
}

// pulledWalk is a walk of the crid at bin, started, with busybox from a
// registry of the test's own pulled.
func pulledWalk(t *testing.T, bin string) *walk {
	t.Helper()
	reg := harness.StartRegistry(t, "", "")
	image := reg.Addr + "/busybox:it"
	harness.PushBusybox(t, image)
	w := newWalk(t, bin, crashPlugin(t), image, 35)
	w.start(t)
	if _, err := w.img.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// walk is one crid on a directory of its own, driven as a kubelet drives
// it, restarted whenever it dies.
type walk struct {
	bin, dir, image string
	trigger         string // the crash plugin's trigger file
	net             int    // the test network's number
	d               *harness.Daemon
	rt              runtime.RuntimeServiceClient
	img             runtime.ImageServiceClient
	crashes         int
	ownMounts       []string        // the test's own mounts under dir, not crid's
	logs            strings.Builder // crid's logs, every run
	cgroupsBefore   map[string]bool
}

func newWalk(t *testing.T, bin, plugins, image string, n int) *walk {
	w := &walk{bin: bin, dir: t.TempDir(), image: image, net: n}
	w.trigger = filepath.Join(w.dir, "crash-in-chain")
	harness.PodNet(t, w.dir, n, `{"type":"firewall"}`, fmt.Sprintf(`{"type":"crashplugin","trigger":%q}`, w.trigger))
	os.WriteFile(filepath.Join(w.dir, "crid.toml"), []byte(fmt.Sprintf("[metrics]\naddress = \"\"\n[network]\ncni_plugin_dirs = [%q, \"/usr/lib/cni\"]\n%s",
		plugins, harness.NRIConfig(w.dir))), 0o644)
	w.cgroupsBefore = cridCgroups()
	return w
}

func (w *walk) start(t *testing.T, env ...string) {
	t.Helper()
	w.d = harness.StartEnv(t, w.bin, w.dir, env)
	conn, err := grpc.NewClient("unix://"+w.d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: a test that fails half-way removes its
	// pods before the daemon's cleanup kills crid, as they would outlive
	// it otherwise.
	t.Cleanup(func() { conn.Close() })
	w.rt, w.img = runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
	rt := w.rt
	t.Cleanup(func() { harness.RemoveAllPods(rt) })
}

// restart starts crid again, without failpoints, after it died (or once
// it has been stopped).
func (w *walk) restart(t *testing.T) {
	t.Helper()
	w.d.Stop(t, syscall.SIGKILL)
	w.logs.WriteString(w.d.Log.String())
	w.start(t)
}

// do runs a call until it succeeds, restarting crid each time it dies;
// before a retry, redo may say the call is done already (as a kubelet
// learns from its lists).
func (w *walk) do(t *testing.T, what string, call func(ctx context.Context) error, done func(ctx context.Context) bool) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if attempt > 0 && done != nil && done(ctx) {
			cancel()
			return
		}
		err := call(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case exit := <-w.d.Done:
			w.d.Done <- exit
			w.crashes++
			w.restart(t)
			continue
		case <-time.After(200 * time.Millisecond):
		}
		if status.Code(err) == codes.Unavailable && attempt < 5 {
			w.restart(t)
			continue
		}
		t.Fatalf("%s: %v\ncrid's log:\n%s", what, err, w.d.Log.String())
	}
}

// sequence is a pod's life as the kubelet makes it: pull, run the pod,
// create and start a container, exec in it, stop and remove both, and
// remove the image.
func (w *walk) sequence(t *testing.T) {
	t.Helper()
	w.do(t, "PullImage", func(ctx context.Context) error {
		_, err := w.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: w.image}})
		return err
	}, nil)
	podCfg := harness.PodConfig("walk", func(c *runtime.PodSandboxConfig) { c.LogDirectory = filepath.Join(w.dir, "logs") })
	var pod string
	w.do(t, "RunPodSandbox", func(ctx context.Context) error {
		resp, err := w.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
		if err == nil {
			pod = resp.PodSandboxId
		}
		podCfg.Metadata.Attempt++ // a kubelet's retry is a new attempt
		return err
	}, func(ctx context.Context) bool {
		pod = w.readyPod(ctx)
		return pod != ""
	})
	ctrCfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "app"}, Image: &runtime.ImageSpec{Image: w.image},
		Command: []string{"sleep", "3600"}, LogPath: "app.log"}
	var ctr string
	w.do(t, "CreateContainer", func(ctx context.Context) error {
		resp, err := w.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg, SandboxConfig: podCfg})
		if err == nil {
			ctr = resp.ContainerId
		}
		ctrCfg.Metadata.Attempt++
		return err
	}, func(ctx context.Context) bool {
		ctr = w.container(ctx, pod, runtime.ContainerState_CONTAINER_CREATED, runtime.ContainerState_CONTAINER_RUNNING)
		return ctr != ""
	})
	w.do(t, "StartContainer", func(ctx context.Context) error {
		_, err := w.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr})
		return err
	}, func(ctx context.Context) bool {
		return w.container(ctx, pod, runtime.ContainerState_CONTAINER_RUNNING) == ctr
	})
	w.do(t, "ExecSync", func(ctx context.Context) error {
		resp, err := w.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"true"}, Timeout: 10})
		if err == nil && resp.ExitCode != 0 {
			err = fmt.Errorf("exit code %d: %s", resp.ExitCode, resp.Stderr)
		}
		return err
	}, nil)
	// The teardown, and the kubelet's image GC once nothing uses the
	// image: each must succeed however often it is repeated.
	for _, step := range []struct {
		name string
		call func(ctx context.Context) (any, error)
	}{
		{"StopContainer", func(ctx context.Context) (any, error) {
			return w.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: ctr, Timeout: 1})
		}},
		{"RemoveContainer", func(ctx context.Context) (any, error) {
			return w.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr})
		}},
		{"StopPodSandbox", func(ctx context.Context) (any, error) {
			return w.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
		}},
		{"RemovePodSandbox", func(ctx context.Context) (any, error) {
			return w.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
		}},
		{"RemoveImage", func(ctx context.Context) (any, error) {
			return w.img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: w.image}})
		}},
	} {
		w.do(t, step.name, func(ctx context.Context) error { _, err := step.call(ctx); return err }, nil)
	}
}

// readyPod is the walk's ready pod, if there is one.
func (w *walk) readyPod(ctx context.Context) string {
	resp, err := w.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{
		State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}}})
	if err != nil || len(resp.Items) == 0 {
		return ""
	}
	return resp.Items[0].Id
}

// container is the pod's container in one of the states, if any.
func (w *walk) container(ctx context.Context, pod string, states ...runtime.ContainerState) string {
	resp, err := w.rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: pod}})
	if err != nil {
		return ""
	}
	for _, c := range resp.Containers {
		if slices.Contains(states, c.State) {
			return c.Id
		}
	}
	return ""
}

// removeAll removes every pod and container crid lists, as the kubelet's
// garbage collection does for what it does not want.
func (w *walk) removeAll(t *testing.T) {
	t.Helper()
	w.do(t, "remove everything", func(ctx context.Context) error {
		ctrs, err := w.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
		if err != nil {
			return err
		}
		for _, c := range ctrs.Containers {
			if _, err := w.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
				return err
			}
		}
		pods, err := w.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if _, err := w.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
				return err
			}
			if _, err := w.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}

// leftovers counts what a stopped crid left of the walk's pods, by kind.
func (w *walk) leftovers(t *testing.T) map[string][]string {
	t.Helper()
	left := map[string][]string{}
	add := func(kind string, what ...string) {
		if len(what) > 0 {
			left[kind] = append(left[kind], what...)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], w.dir+"/") && !slices.Contains(w.ownMounts, f[4]) {
			add("mounts", f[4])
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show", "master", fmt.Sprintf("critest%d", w.net)).Output(); err == nil {
		add("veths", strings.Fields(string(out))...)
	}
	subnet := fmt.Sprintf("10.%d.0.", 200+w.net)
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, _ := exec.Command(cmd).Output()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, subnet) {
				add("iptables rules", line)
			}
		}
	}
	leases, _ := filepath.Glob(filepath.Join(w.dir, "ipam", "*", subnet+"*"))
	add("IP leases", leases...)
	for cg := range cridCgroups() {
		if !w.cgroupsBefore[cg] {
			add("cgroups", cg)
		}
	}
	st, err := store.Open(filepath.Join(w.dir, "root"))
	if err != nil {
		add("records", "the store does not open: "+err.Error())
	} else {
		for _, b := range []string{store.BucketSandboxes, store.BucketContainers, store.BucketImages, store.BucketLayers} {
			st.ForEach(b, func(key string, _ []byte) error { add("records", b+"/"+key); return nil })
		}
		st.Close()
	}
	// The bins of removed directories: a clean stop empties them, and a
	// start after a kill empties what the kill left.
	for _, d := range []string{"run/sandboxes", "run/containers", "root/containers", "root/layers", "root/trash", "run/trash"} {
		entries, _ := os.ReadDir(filepath.Join(w.dir, d))
		for _, e := range entries {
			add("state files", filepath.Join(d, e.Name()))
		}
	}
	for _, pid := range harness.Monitors(w.dir) {
		add("processes", fmt.Sprintf("monitor %d", pid))
	}
	return left
}

// cridCgroups are the cgroups under crid's default parent, /crid, in
// every hierarchy: pods' and containers'.
func cridCgroups() map[string]bool {
	out := map[string]bool{}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/crid")
	if fi, err := os.Stat("/sys/fs/cgroup/crid"); err == nil && fi.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/crid")
	}
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != root {
				out[p] = true
			}
			return nil
		})
	}
	return out
}

// TestConcurrentCallsAgree: what a kubelet and a retrying one (or two
// kubelets' workers) do at once. Ten StopContainer and ten RemoveContainer
// calls of one running container, then ten StopPodSandbox and ten
// RemovePodSandbox calls of its pod, all succeed, as the CRI asks of a
// stop or removal of what is gone; a CreateContainer racing the pod's
// removal either fails or makes a container that the removal took with
// the pod. Nothing is left.
func TestConcurrentCallsAgree(t *testing.T) {
	harness.RequireRoot(t)
	w := pulledWalk(t, cridBin)
	image, ctx := w.image, context.Background()
	var round int
	// tenAtOnce makes ten of a call at once; every one must succeed.
	tenAtOnce := func(what string, call func() error) {
		t.Helper()
		errs := make(chan error, 10)
		for range 10 {
			go func() { errs <- call() }()
		}
		var failed []error
		for range 10 {
			if err := <-errs; err != nil {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			t.Errorf("round %d: %d of 10 concurrent %s failed: %v", round, len(failed), what, failed[0])
		}
	}
	for round = range 3 {
		podCfg := harness.PodConfig(fmt.Sprintf("race-%d", round), func(c *runtime.PodSandboxConfig) { c.LogDirectory = filepath.Join(w.dir, "logs") })
		pod := harness.RunPod(t, w.rt, podCfg)
		ctrCfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "app"}, Image: &runtime.ImageSpec{Image: image},
			Command: []string{"sleep", "3600"}, LogPath: "app.log"}
		resp, err := w.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg, SandboxConfig: podCfg})
		if err != nil {
			t.Fatal(err)
		}
		ctr := resp.ContainerId
		if _, err := w.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr}); err != nil {
			t.Fatal(err)
		}
		tenAtOnce("StopContainer", func() error {
			_, err := w.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: ctr, Timeout: 1})
			return err
		})
		tenAtOnce("RemoveContainer", func() error {
			_, err := w.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr})
			return err
		})
		// A create races the pod's removal.
		created := make(chan string, 1)
		go func() {
			cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "late"}, Image: &runtime.ImageSpec{Image: image},
				Command: []string{"sleep", "3600"}, LogPath: "late.log"}
			resp, err := w.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
			if err != nil {
				created <- ""
				return
			}
			created <- resp.ContainerId
		}()
		tenAtOnce("StopPodSandbox", func() error {
			_, err := w.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
			return err
		})
		tenAtOnce("RemovePodSandbox", func() error {
			_, err := w.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
			return err
		})
		late := <-created
		// Whatever the race gave, the pod's removal took it: no container
		// of the pod is left, and the late one, if made, is gone.
		left, err := w.rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: pod}})
		if err != nil {
			t.Fatal(err)
		}
		if len(left.Containers) > 0 {
			t.Errorf("round %d: the removed pod still has containers %v (the late create answered %q)", round, left.Containers, late)
		}
		if late != "" {
			if _, err := w.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: late}); status.Code(err) != codes.NotFound {
				t.Errorf("round %d: the late container %s outlived its pod: %v", round, late, err)
			}
		}
	}
	w.removeAll(t)
	if _, err := w.img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	w.d.Stop(t, syscall.SIGTERM)
	if left := w.leftovers(t); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}

// TestRebootLosesNothingButTheProcesses feigns a node's reboot under a
// crid with pods: crid stops, every process of the pods (containers,
// infra, monitors) is killed, every mount under its runroot is undone
// and the runroot emptied, and the boot ID changes (through the test
// build's override: the host's cannot). The next crid reports every
// container exited with a reason and every pod not ready, and removing
// them all leaves nothing.
func TestRebootLosesNothingButTheProcesses(t *testing.T) {
	harness.RequireRoot(t)
	bin, err := harness.Build("../..", t.TempDir(), "failpoints")
	if err != nil {
		t.Fatal(err)
	}
	w := pulledWalk(t, bin)
	image, ctx := w.image, context.Background()
	var ctrs []string
	for i, shared := range []bool{false, true} {
		podCfg := harness.PodConfig(fmt.Sprintf("reboot-%d", i), func(c *runtime.PodSandboxConfig) {
			c.LogDirectory = filepath.Join(w.dir, "logs", fmt.Sprint(i))
			if shared {
				c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
			}
		})
		pod := harness.RunPod(t, w.rt, podCfg)
		for j, cmd := range [][]string{{"sleep", "3600"}, {"sleep", "3600"}, {"true"}} {
			cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: fmt.Sprintf("c%d", j)}, Image: &runtime.ImageSpec{Image: image},
				Command: cmd, LogPath: fmt.Sprintf("c%d.log", j)}
			resp, err := w.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
				t.Fatal(err)
			}
			ctrs = append(ctrs, resp.ContainerId)
		}
	}
	time.Sleep(500 * time.Millisecond) // the `true`s exit

	// The reboot.
	w.d.Stop(t, syscall.SIGTERM)
	killed := 0
	for cg := range cridCgroups() {
		if w.cgroupsBefore[cg] || !strings.Contains(cg, "/pids/") {
			continue
		}
		procs, _ := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
		for _, p := range strings.Fields(string(procs)) {
			var pid int
			fmt.Sscan(p, &pid)
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	for _, pid := range harness.Monitors(w.dir) {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	time.Sleep(200 * time.Millisecond)
	harness.DetachMountsUnder(filepath.Join(w.dir, "run"))
	if err := os.RemoveAll(filepath.Join(w.dir, "run")); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %d processes, emptied the runroot", killed)

	w.start(t, "CRID_OVERRIDE_BOOT_ID=00000000-feed-4bee-8000-000000000001")
	listed, err := w.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed.Containers) != len(ctrs) {
		t.Errorf("%d containers listed after the reboot, want the %d made", len(listed.Containers), len(ctrs))
	}
	for _, c := range listed.Containers {
		st, err := w.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			t.Fatal(err)
		}
		s := st.Status
		t.Logf("%s: %s, exit %d, reason %s: %s", s.Metadata.Name, s.State, s.ExitCode, s.Reason, s.Message)
		if s.State != runtime.ContainerState_CONTAINER_EXITED || s.Reason == "" || s.FinishedAt == 0 {
			t.Errorf("container %s after the reboot: %s, reason %q, message %q", s.Metadata.Name, s.State, s.Reason, s.Message)
		}
	}
	pods, err := w.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
			t.Errorf("pod %s is %s after the reboot", p.Metadata.Name, p.State)
		}
	}
	w.removeAll(t)
	if _, err := w.img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	w.d.Stop(t, syscall.SIGTERM)
	if left := w.leftovers(t); len(left) > 0 {
		t.Errorf("left after the reboot and the removal of everything: %v\ncrid's log:\n%s", left, w.d.Log.String())
	}
}

// TestFullDiskFailsCleanlyAndRecovers: crid's root and runroot on small
// tmpfs mounts of the test's own. A pull into a root too small for the
// image, and a create with the root full, fail with ResourceExhausted
// naming the device's want of space, and leave no partial layer, no
// record and no directory; once there is room, the same calls succeed.
// A create on a root remounted read-only fails as FailedPrecondition.
// A restarted crid finds its database whole.
func TestFullDiskFailsCleanlyAndRecovers(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	image := reg.Addr + "/busybox:it"
	harness.PushBusybox(t, image)
	w := newWalk(t, cridBin, crashPlugin(t), image, 35)
	root := filepath.Join(w.dir, "root")
	for _, d := range []string{root, filepath.Join(w.dir, "run")} {
		os.MkdirAll(d, 0o755)
		if err := syscall.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(d, syscall.MNT_DETACH) })
		w.ownMounts = append(w.ownMounts, d)
	}
	resize := func(size string) {
		t.Helper()
		if err := syscall.Mount("tmpfs", root, "tmpfs", syscall.MS_REMOUNT, "size="+size); err != nil {
			t.Fatal(err)
		}
	}
	w.start(t)
	ctx := context.Background()
	layerDirs := func() []string {
		entries, _ := os.ReadDir(filepath.Join(root, "layers"))
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	wantFull := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("%s on a full disk: %v, want ResourceExhausted saying so", what, err)
		}
	}

	_, err := w.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}})
	wantFull("PullImage", err)
	t.Logf("pull into 1 MiB: %v", err)
	if dirs := layerDirs(); len(dirs) > 0 {
		t.Errorf("the failed pull left layer directories %v", dirs)
	}
	if imgs, _ := w.img.ListImages(ctx, &runtime.ListImagesRequest{}); len(imgs.GetImages()) > 0 {
		t.Errorf("the failed pull left images %v", imgs.Images)
	}
	resize("64m")
	if _, err := w.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatalf("the pull once there is room: %v", err)
	}

	podCfg := harness.PodConfig("full", func(c *runtime.PodSandboxConfig) { c.LogDirectory = filepath.Join(w.dir, "logs") })
	pod := harness.RunPod(t, w.rt, podCfg)
	// Fill the root to the last byte.
	filler, err := os.Create(filepath.Join(root, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	for _, err := filler.Write(chunk[:1]); err == nil; _, err = filler.Write(chunk[:1]) {
	}
	filler.Close()
	ctrConfig := func(name string) *runtime.ContainerConfig {
		return &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: image},
			Command: []string{"sleep", "3600"}, LogPath: name + ".log"}
	}
	// The metadata log keeps zeroed room ahead of its records (a chunk),
	// so the first creates on a full root may still fit, whole: create
	// until one does not.
	var fitted []string
	for i := 0; ; i++ {
		resp, err := w.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig(fmt.Sprintf("fits-%d", i)), SandboxConfig: podCfg})
		if err == nil {
			if fitted = append(fitted, resp.ContainerId); len(fitted) > 50 {
				t.Fatal("creates kept fitting in a full root")
			}
			continue
		}
		wantFull("CreateContainer", err)
		t.Logf("create with the root full, after %d that fitted: %v", len(fitted), err)
		break
	}
	if ctrs, _ := w.rt.ListContainers(ctx, &runtime.ListContainersRequest{}); len(ctrs.GetContainers()) != len(fitted) {
		t.Errorf("the failed create left containers %v, want the %d that fitted", ctrs.Containers, len(fitted))
	}
	for _, d := range []string{"root/containers", "run/containers"} {
		if entries, _ := os.ReadDir(filepath.Join(w.dir, d)); len(entries) != len(fitted) {
			t.Errorf("the failed create left %d entries in %s, want the %d that fitted", len(entries), d, len(fitted))
		}
	}
	os.Remove(filepath.Join(root, "filler"))
	for _, id := range fitted {
		if _, err := w.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}
	ctrCfg := ctrConfig("app")
	resp, err := w.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrCfg, SandboxConfig: podCfg})
	if err != nil {
		t.Fatalf("the create once there is room: %v", err)
	}
	if _, err := w.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatal(err)
	}

	// A root gone read-only (an ext4 remounted so on errors; here the
	// containers' layer dir, as crid holds its database open): a create
	// fails as a precondition the operator must fix, and leaves nothing.
	layers := filepath.Join(root, "containers")
	if err := syscall.Mount(layers, layers, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", layers, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	roCfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "ro"}, Image: &runtime.ImageSpec{Image: image},
		Command: []string{"sleep", "3600"}, LogPath: "ro.log"}
	_, err = w.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: roCfg, SandboxConfig: podCfg})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("CreateContainer on a read-only root: %v, want FailedPrecondition saying so", err)
	}
	t.Logf("create with the root read-only: %v", err)
	if err := syscall.Unmount(layers, 0); err != nil {
		t.Fatal(err)
	}
	if ctrs, _ := w.rt.ListContainers(ctx, &runtime.ListContainersRequest{}); len(ctrs.GetContainers()) != 1 {
		t.Errorf("after the read-only create: containers %v, want the one running", ctrs.GetContainers())
	}

	// The database took the failures whole.
	w.restart(t)
	if imgs, err := w.img.ListImages(ctx, &runtime.ListImagesRequest{}); err != nil || len(imgs.Images) != 1 {
		t.Errorf("after a restart: images %v, %v", imgs.GetImages(), err)
	}
	if ctrs, err := w.rt.ListContainers(ctx, &runtime.ListContainersRequest{}); err != nil || len(ctrs.Containers) != 1 || ctrs.Containers[0].State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after a restart: containers %v, %v", ctrs.GetContainers(), err)
	}
	w.removeAll(t)
	if _, err := w.img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	w.d.Stop(t, syscall.SIGTERM)
	if left := w.leftovers(t); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
}
