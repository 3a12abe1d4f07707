package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/test/harness"
)

// nriPlugin records what crid tells it and adjusts containers by name.
type nriPlugin struct {
	mu     sync.Mutex
	events []string // "Event name" for containers, "Event pod-id" for pods
	synced []string // "id=state" of the containers of the last Synchronize, and the pods' IDs
	// adjust answers CreateContainer for a container of that name.
	adjust map[string]*api.ContainerAdjustment
	// resize answers UpdateContainer: these resources instead.
	resize *api.LinuxResources
	ready  chan struct{}
	once   sync.Once
}

func (p *nriPlugin) record(event, who string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, event+" "+who)
}

func (p *nriPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *nriPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	p.synced = nil
	for _, pod := range pods {
		p.synced = append(p.synced, pod.GetId())
	}
	for _, c := range ctrs {
		p.synced = append(p.synced, c.GetId()+"="+c.GetState().String())
	}
	p.mu.Unlock()
	p.once.Do(func() { close(p.ready) })
	return nil, nil
}

func (p *nriPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod.GetId())
	return nil
}

func (p *nriPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod.GetId())
	return nil
}

func (p *nriPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox", pod.GetId())
	return nil
}

func (p *nriPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", c.GetName())
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.adjust[c.GetName()], nil, nil
}

func (p *nriPlugin) PostCreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostCreateContainer", c.GetName())
	return nil
}

func (p *nriPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer", c.GetName())
	return nil
}

func (p *nriPlugin) PostStartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostStartContainer", c.GetName())
	return nil
}

func (p *nriPlugin) UpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.record("UpdateContainer", c.GetName())
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resize == nil {
		return nil, nil
	}
	return []*api.ContainerUpdate{{ContainerId: c.GetId(), Linux: &api.LinuxContainerUpdate{Resources: p.resize}}}, nil
}

func (p *nriPlugin) PostUpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostUpdateContainer", c.GetName())
	return nil
}

func (p *nriPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", c.GetName())
	return nil, nil
}

func (p *nriPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer", c.GetName())
	return nil
}

// connectPlugin connects p to the crid serving in dir and waits for its
// Synchronize.
func connectPlugin(t *testing.T, dir string, p *nriPlugin) stub.Stub {
	t.Helper()
	p.ready = make(chan struct{})
	p.once = sync.Once{}
	s, err := stub.New(p, stub.WithPluginName("crid-test"), stub.WithPluginIdx("10"), stub.WithSocketPath(harness.NRISocket(dir)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-p.ready:
	case <-done:
		t.Fatal("the plugin's connection ended before it synchronized")
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin was not synchronized within 10s")
	}
	return s
}

// cgroupValue reads a limit of the container's cgroup on the host: the
// cgroup v1 controller's file, else the v2 one.
func (e *ctrEnv) cgroupValue(t *testing.T, id, v1, v2 string) string {
	t.Helper()
	resp, err := e.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Cgroup string }
	json.Unmarshal([]byte(resp.Info["info"]), &info)
	controller, file, _ := strings.Cut(v1, "/")
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, info.Cgroup, file))
	if err != nil {
		data, err = os.ReadFile(filepath.Join("/sys/fs/cgroup", info.Cgroup, v2))
	}
	if err != nil {
		t.Fatalf("read the cgroup of %s (%q): %v", id, info.Cgroup, err)
	}
	return strings.TrimSpace(string(data))
}

// A plugin hears of every change in order, adjusts a container as it is
// made, resizes it, is refused what crid cannot do (leaving nothing), and
// after crid's kill -9 and restart finds the running container again in
// its Synchronize.
func TestNRIPluginSeesAndAdjustsContainers(t *testing.T) {
	e := newCtrEnv(t, 22)
	ctx := context.Background()
	dir := e.d.Dir
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "from-plugin"), []byte("plugin file\n"), 0o644)
	p := &nriPlugin{adjust: map[string]*api.ContainerAdjustment{
		"adjusted": {
			Env:         []*api.KeyValue{{Key: "NRI_ADDED", Value: "yes"}},
			Mounts:      []*api.Mount{{Destination: "/nri", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro"}}},
			Annotations: map[string]string{"nri.test/by": "plugin"},
			Rlimits:     []*api.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 777, Hard: 777}},
			Linux: &api.LinuxContainerAdjustment{Resources: &api.LinuxResources{
				Memory: &api.LinuxMemory{Limit: api.Int64(int64(64 << 20))},
				// /dev/fuse, which the container's device rules would refuse.
				Devices: []*api.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: api.Int64(int64(10)), Minor: api.Int64(int64(229)), Access: "rw"}},
			}},
		},
		"hooked": {Hooks: &api.Hooks{Prestart: []*api.Hook{{Path: "/bin/true"}}}},
	}}
	s := connectPlugin(t, dir, p)
	if !slices.Contains(p.synced, e.pod) {
		t.Errorf("the pod made before the plugin connected is not in its Synchronize: %v", p.synced)
	}

	id := e.run(t, "adjusted", "sleep 300")
	resp, err := e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id,
		Cmd: []string{"sh", "-c", "echo $NRI_ADDED; ulimit -n; cat /nri/from-plugin; touch /nri/x 2>/dev/null || echo read-only; mknod /dev/f c 10 229 && (exec 3</dev/f) && echo fuse-ok"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resp.Stdout), "yes\n777\nplugin file\nread-only\nfuse-ok\n"; got != want {
		t.Errorf("the adjusted container says %q, want %q (stderr %q)", got, want, resp.Stderr)
	}
	if got := e.cgroupValue(t, id, "memory/memory.limit_in_bytes", "memory.max"); got != strconv.Itoa(64<<20) {
		t.Errorf("memory limit %s, want the plugin's %d", got, 64<<20)
	}

	// The kubelet's resize goes through the plugin, whose answer wins.
	p.mu.Lock()
	p.resize = &api.LinuxResources{Cpu: &api.LinuxCPU{Shares: api.UInt64(uint64(300))}}
	p.mu.Unlock()
	if _, err := e.rt.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtime.LinuxContainerResources{CpuShares: 512}}); err != nil {
		t.Fatal(err)
	}
	if got := e.cgroupValue(t, id, "cpu/cpu.shares", "cpu.weight"); got != "300" && got != strconv.FormatUint(cgroups.ShareToWeight(300), 10) {
		t.Errorf("cpu shares %s after the resize, want the plugin's 300", got)
	}
	// A plugin may resize a container on its own.
	failed, err := s.UpdateContainers([]*api.ContainerUpdate{{ContainerId: id, Linux: &api.LinuxContainerUpdate{
		Resources: &api.LinuxResources{Memory: &api.LinuxMemory{Limit: api.Int64(int64(48 << 20))}}}}})
	if err != nil || len(failed) != 0 {
		t.Fatalf("a plugin's own update: failed %v, %v", failed, err)
	}
	if got := e.cgroupValue(t, id, "memory/memory.limit_in_bytes", "memory.max"); got != strconv.Itoa(48<<20) {
		t.Errorf("memory limit %s after the plugin's update, want %d", got, 48<<20)
	}

	// An adjustment crid cannot carry out fails the create and leaves
	// nothing; the plugin is told to forget the container.
	_, err = e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "hooked"}, Image: &runtime.ImageSpec{Image: e.image}, Command: []string{"true"},
	}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "hooks") {
		t.Errorf("an OCI hook from a plugin: %v, want FailedPrecondition naming hooks", err)
	}
	list, _ := e.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if len(list.GetContainers()) != 1 {
		t.Errorf("containers after the refused create: %v", list.GetContainers())
	}
	if bundles, _ := os.ReadDir(filepath.Join(dir, "run", "containers")); len(bundles) != 1 {
		t.Errorf("%d container bundles after the refused create, want the one running", len(bundles))
	}

	// kill -9 and a restart: the container runs on, and a plugin
	// connecting to the new crid finds it running.
	e.d.Stop(t, syscall.SIGKILL)
	e.d = harness.Start(t, cridBin, dir)
	e.connect(t)
	p2 := &nriPlugin{}
	connectPlugin(t, dir, p2)
	if !slices.Contains(p2.synced, id+"=CONTAINER_RUNNING") {
		t.Errorf("after a restart the plugin synchronized %v, want %s running", p2.synced, id)
	}
	if _, err := e.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	harness.RemovePod(t, e.rt, e.pod)

	want := []string{
		"CreateContainer adjusted", "PostCreateContainer adjusted", "StartContainer adjusted", "PostStartContainer adjusted",
		"UpdateContainer adjusted", "PostUpdateContainer adjusted",
		"CreateContainer hooked", "RemoveContainer hooked",
	}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Errorf("the first plugin heard\n%v\nwant\n%v", got, want)
	}
	want = []string{"StopContainer adjusted", "RemoveContainer adjusted", "StopPodSandbox " + e.pod, "RemovePodSandbox " + e.pod}
	if got := p2.seen(); !slices.Equal(got, want) {
		t.Errorf("the second plugin heard\n%v\nwant\n%v", got, want)
	}
}

// A plugin that fails RunPodSandbox fails the request: the pod is not
// listed and nothing of it is left.
func TestNRIPluginRefusesAPod(t *testing.T) {
	dir, d := podDaemon(t, 23)
	rt := d.Client(t)
	before := countLeaks(t, dir)
	refuser := &refusingPlugin{}
	s, err := stub.New(refuser, stub.WithPluginName("refuser"), stub.WithPluginIdx("20"), stub.WithSocketPath(harness.NRISocket(dir)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	// The plugin is in use once its Synchronize is done: a pod fails then.
	var runErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var resp *runtime.RunPodSandboxResponse
		resp, runErr = rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: harness.PodConfig("refused", nil)})
		if runErr != nil {
			break
		}
		harness.RemovePod(t, rt, resp.PodSandboxId)
	}
	if status.Code(runErr) != codes.FailedPrecondition || !strings.Contains(runErr.Error(), "no pods today") {
		t.Fatalf("a refused pod: %v, want FailedPrecondition with the plugin's reason", runErr)
	}
	pods, _ := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if len(pods.GetItems()) != 0 {
		t.Errorf("pods after the refusal: %v", pods.GetItems())
	}
	if after := countLeaks(t, dir); after != before {
		t.Errorf("the refused pod leaked: before %+v, after %+v", before, after)
	}
}

type refusingPlugin struct{}

func (refusingPlugin) RunPodSandbox(context.Context, *api.PodSandbox) error {
	return fmt.Errorf("no pods today")
}
