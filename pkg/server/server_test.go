package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/version"
	"github.com/crid-dev/crid/pkg/wirelist"
)

type clients struct {
	rt  runtime.RuntimeServiceClient
	img runtime.ImageServiceClient
	cfg config.Config
}

// serve runs a Server on a unix socket in a temporary dir, as crid does,
// and returns clients of it.
func serve(t *testing.T, edit func(*config.Config)) clients {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Root = filepath.Join(dir, "root")
	cfg.Network.CNIConfigDir = filepath.Join(dir, "net.d")
	cfg.Network.CNIPluginDirs = []string{filepath.Join(dir, "bin")}
	if edit != nil {
		edit(&cfg)
	}
	st, err := store.Open(cfg.Root)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "crid.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(ServerOptions(nil)...)
	images, err := image.New(image.Options{Layout: image.Layout{Root: cfg.Root}, Store: st, RegistriesConf: cfg.Image.RegistriesConf})
	if err != nil {
		t.Fatal(err)
	}
	cg := &cgroups.Hierarchy{Mode: cgroups.Hybrid, V1: map[string]string{"memory": "/sys/fs/cgroup/memory"}}
	sandboxes, err := sandbox.New(context.Background(), sandbox.Options{RunRoot: filepath.Join(dir, "run"), Store: st, Cgroups: cg,
		CNI:      cni.NewManager(cfg.Network.CNIConfigDir, cfg.Network.CNIPluginDirs, filepath.Join(dir, "cni-cache"), nil),
		Monitors: sandbox.MonitorBinary{}, Kernel: sandbox.Host{Cgroups: cg}})
	if err != nil {
		t.Fatal(err)
	}
	containers, err := container.New(context.Background(), container.Options{Root: cfg.Root, RunRoot: filepath.Join(dir, "run"), Store: st, Cgroups: cg, Layers: images, Monitors: container.MonitorBinary{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(containers.Close)
	New(cfg, st, cg, images, sandboxes, containers, events.New(), nil, nil).Register(g)
	go g.Serve(l)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop(); st.Close() })
	return clients{runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn), cfg}
}

func TestVersion(t *testing.T) {
	c := serve(t, nil)
	v, err := c.rt.Version(context.Background(), &runtime.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "crid" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion != version.Version || v.RuntimeVersion == "" {
		t.Fatalf("got %+v", v)
	}
}

func TestStatusNetworkFollowsCNIConfigDir(t *testing.T) {
	c := serve(t, nil)
	ctx := context.Background()
	conditions := func() map[string]*runtime.RuntimeCondition {
		t.Helper()
		resp, err := c.rt.Status(ctx, &runtime.StatusRequest{Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*runtime.RuntimeCondition{}
		for _, cond := range resp.Status.Conditions {
			m[cond.Type] = cond
		}
		if !strings.Contains(resp.Info["config"], c.cfg.Root) || resp.Info["cgroupMode"] != `"hybrid"` {
			t.Errorf("verbose info lacks the config or cgroup mode: %v", resp.Info)
		}
		return m
	}

	got := conditions()
	if rt := got[runtime.RuntimeReady]; rt == nil || !rt.Status {
		t.Fatalf("RuntimeReady = %+v", rt)
	}
	nw := got[runtime.NetworkReady]
	if nw == nil || nw.Status || nw.Reason != "NetworkPluginNotReady" || !strings.Contains(nw.Message, c.cfg.Network.CNIConfigDir) {
		t.Fatalf("with no CNI config, NetworkReady = %+v", nw)
	}

	// A config whose plugin is missing is still not ready, and says which.
	os.MkdirAll(c.cfg.Network.CNIConfigDir, 0o755)
	os.WriteFile(filepath.Join(c.cfg.Network.CNIConfigDir, "10-pods.conflist"),
		[]byte(`{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}`), 0o644)
	if nw := conditions()[runtime.NetworkReady]; nw.Status || !strings.Contains(nw.Message, `plugin "bridge" not found`) {
		t.Fatalf("with the plugin missing, NetworkReady = %+v", nw)
	}

	// Installing the plugin makes the network ready without a restart.
	os.MkdirAll(c.cfg.Network.CNIPluginDirs[0], 0o755)
	os.WriteFile(filepath.Join(c.cfg.Network.CNIPluginDirs[0], "bridge"), []byte("#!/bin/sh\n"), 0o755)
	if nw := conditions()[runtime.NetworkReady]; !nw.Status || nw.Reason != "" {
		t.Fatalf("with config and plugin, NetworkReady = %+v", nw)
	}
}

func TestStatusListsTheDefaultHandler(t *testing.T) {
	c := serve(t, func(cfg *config.Config) { cfg.Runtime.DefaultHandler = "fast" })
	resp, err := c.rt.Status(context.Background(), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// By its name, and as "" (a pod without a RuntimeClass), each with
	// the features the executor honours.
	var names []string
	for _, h := range resp.RuntimeHandlers {
		names = append(names, h.Name)
		if !h.GetFeatures().GetRecursiveReadOnlyMounts() {
			t.Errorf("handler %q does not claim recursive read-only mounts", h.Name)
		}
	}
	if strings.Join(names, ",") != ",fast" {
		t.Fatalf("handlers %q", names)
	}
	if resp.Info != nil {
		t.Fatalf("non-verbose status carries info: %v", resp.Info)
	}
}

func TestRuntimeConfigReportsTheCgroupDriver(t *testing.T) {
	c := serve(t, nil)
	resp, err := c.rt.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
	if err != nil || resp.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_CGROUPFS {
		t.Errorf("got %v, %v", resp, err)
	}
}

func TestUpdateRuntimeConfig(t *testing.T) {
	c := serve(t, nil)
	ctx := context.Background()
	req := func(cidr string) *runtime.UpdateRuntimeConfigRequest {
		return &runtime.UpdateRuntimeConfigRequest{RuntimeConfig: &runtime.RuntimeConfig{
			NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr}}}
	}
	for _, ok := range []string{"", "10.88.0.0/16", "10.88.0.0/16,fd00::/64"} {
		if _, err := c.rt.UpdateRuntimeConfig(ctx, req(ok)); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	_, err := c.rt.UpdateRuntimeConfig(ctx, req("10.88.0.0/33"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "pod_cidr") {
		t.Fatalf("bad CIDR: %v", err)
	}
}

func TestCallsNotYetOfferedAreUnimplemented(t *testing.T) {
	c := serve(t, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"CheckpointContainer": func() error {
			_, err := c.rt.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want Unimplemented", name, err)
			continue
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "crid") || !strings.Contains(msg, name) {
			t.Errorf("%s: message %q does not say crid lacks %s", name, msg, name)
		}
	}
}

func TestInterceptorTurnsPanicIntoInternal(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/Boom"}
	_, err := unaryInterceptor(context.Background(), nil, info, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("got %v", err)
	}
}

func TestInterceptorLogsFailuresWithTheirPodAndContainer(t *testing.T) {
	var out strings.Builder
	ctx := klog.NewContext(context.Background(), funcr.New(func(_, args string) { out.WriteString(args + "\n") }, funcr.Options{}))
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/StopContainer"}
	var inHandler string
	_, err := unaryInterceptor(ctx, &runtime.StopContainerRequest{ContainerId: "c0ffee"}, info, func(ctx context.Context, _ any) (any, error) {
		// Lines the handler logs name the container too.
		logctx.From(ctx).Info("x")
		inHandler = out.String()
		return nil, fmt.Errorf("kill: %w", errdefs.ErrFailedPrecondition)
	})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(inHandler, `"container"="c0ffee"`) {
		t.Errorf("the handler's line: %q", inHandler)
	}
	failure := strings.TrimPrefix(out.String(), inHandler)
	for _, want := range []string{`"container"="c0ffee"`, `"method"="/runtime.v1.RuntimeService/StopContainer"`, `"code"="FailedPrecondition"`} {
		if !strings.Contains(failure, want) {
			t.Errorf("failure line %q does not say %s", failure, want)
		}
	}
	out.Reset()
	unaryInterceptor(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: "feed"}, info, func(context.Context, any) (any, error) {
		return nil, errors.New("busy")
	})
	if !strings.Contains(out.String(), `"pod"="feed"`) || strings.Contains(out.String(), `"container"`) {
		t.Errorf("failure line %q", out.String())
	}
	// A call that made a container before failing names it.
	out.Reset()
	unaryInterceptor(ctx, &runtime.CreateContainerRequest{PodSandboxId: "feed"}, info, func(ctx context.Context, _ any) (any, error) {
		logctx.With(ctx, "container", "new1")
		return nil, errors.New("an NRI plugin failed CreateContainer")
	})
	if !strings.Contains(out.String(), `"pod"="feed"`) || !strings.Contains(out.String(), `"container"="new1"`) {
		t.Errorf("failure line %q", out.String())
	}
}

func TestInterceptorMapsErrors(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/X"}
	_, err := unaryInterceptor(context.Background(), nil, info, func(context.Context, any) (any, error) {
		return nil, errors.Join(errors.New("container abc"), errdefs.ErrNotFound)
	})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("got %v", err)
	}
}

func TestImageFsInfoReportsLayersAndContainers(t *testing.T) {
	c := serve(t, nil)
	layers := filepath.Join(c.cfg.Root, "layers")
	os.MkdirAll(filepath.Join(layers, "sha256-abc"), 0o700)
	os.WriteFile(filepath.Join(layers, "sha256-abc", "f"), make([]byte, 8192), 0o644)

	resp, err := c.img.ImageFsInfo(context.Background(), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ImageFilesystems) != 1 || len(resp.ContainerFilesystems) != 1 {
		t.Fatalf("got %v", resp)
	}
	img := resp.ImageFilesystems[0]
	if img.FsId.Mountpoint != layers || img.UsedBytes.Value < 8192 || img.InodesUsed.Value != 3 || img.Timestamp == 0 {
		t.Errorf("image filesystem %v", img)
	}
	if ctr := resp.ContainerFilesystems[0]; ctr.FsId.Mountpoint != filepath.Join(c.cfg.Root, "containers") {
		t.Errorf("container filesystem %v", ctr)
	}
}

// TestMetricDescriptors: every metric is described once, with help and
// the base labels first.
func TestMetricDescriptors(t *testing.T) {
	c := serve(t, nil)
	resp, err := c.rt.ListMetricDescriptors(context.Background(), &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range resp.Descriptors {
		if seen[d.Name] || d.Help == "" || len(d.LabelKeys) < 3 || strings.Join(d.LabelKeys[:3], ",") != "id,name,image" {
			t.Errorf("descriptor %+v", d)
		}
		seen[d.Name] = true
	}
	for _, want := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_network_receive_bytes_total", "container_fs_usage_bytes"} {
		if !seen[want] {
			t.Errorf("%s is not described", want)
		}
	}
}

// BenchmarkInterceptorMetrics measures what counting and timing cost a
// CRI call: the interceptor chain around an empty handler, with metrics
// off (nil) and on.
func BenchmarkInterceptorMetrics(b *testing.B) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/ContainerStatus"}
	req := &runtime.ContainerStatusRequest{ContainerId: "c0ffee"}
	handler := func(context.Context, any) (any, error) { return &runtime.ContainerStatusResponse{}, nil }
	for _, tt := range []struct {
		name string
		m    *metrics.Metrics
	}{{"off", nil}, {"on", metrics.New(prometheus.NewRegistry())}} {
		b.Run(tt.name, func(b *testing.B) {
			measure := measured(tt.m)
			inner := func(ctx context.Context, req any) (any, error) {
				return unaryInterceptor(ctx, req, info, handler)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				measure(ctx, req, info, inner)
			}
		})
	}
}

// A list answered from kept entries is logged at trace as the client
// reads it, entries and all.
func TestTraceLogShowsAListsEntries(t *testing.T) {
	var out strings.Builder
	ctx := klog.NewContext(context.Background(), funcr.New(func(_, args string) { out.WriteString(args + "\n") }, funcr.Options{Verbosity: 6}))
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/ListContainers"}
	listed := wirelist.New(&runtime.ListContainersResponse{}, "containers", listedContainer)
	c := &container.Container{ID: "c0ffee"}
	resp, err := unaryInterceptor(ctx, &runtime.ListContainersRequest{}, info, func(context.Context, any) (any, error) {
		resp := &runtime.ListContainersResponse{}
		err := listed.Fill(resp, []*container.Container{c}, func(*container.Container) bool { return true })
		return resp, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `containers:{id:\"c0ffee\"`) {
		t.Errorf("the trace line %q does not name the listed container", out.String())
	}
	if len(resp.(*runtime.ListContainersResponse).Containers) != 0 {
		t.Error("logging changed the response it logged")
	}
}
