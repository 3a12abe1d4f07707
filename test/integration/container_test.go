package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/pty"
	"github.com/crid-dev/crid/test/harness"
)

// ctrEnv is a crid with a pod and a busybox image, ready for containers.
type ctrEnv struct {
	d      *harness.Daemon
	rt     runtime.RuntimeServiceClient
	img    runtime.ImageServiceClient
	pod    string
	podCfg *runtime.PodSandboxConfig
	image  string
	logDir string
}

func newCtrEnv(t *testing.T, n int, podEdits ...func(*runtime.PodSandboxConfig)) *ctrEnv {
	t.Helper()
	return newCtrEnvConfig(t, n, "", podEdits...)
}

// newCtrEnvConfig is newCtrEnv with crid.toml as given (with the test's
// NRI table added), for a test of a setting.
func newCtrEnvConfig(t *testing.T, n int, toml string, podEdits ...func(*runtime.PodSandboxConfig)) *ctrEnv {
	t.Helper()
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	harness.PushBusybox(t, reg.Addr+"/busybox:it")
	dir := t.TempDir()
	harness.PodNet(t, dir, n)
	if toml != "" {
		os.WriteFile(filepath.Join(dir, "crid.toml"), []byte(toml+"\n"+harness.NRIConfig(dir)), 0o644)
	}
	e := &ctrEnv{d: harness.Start(t, cridBin, dir), image: reg.Addr + "/busybox:it", logDir: filepath.Join(dir, "logs")}
	e.connect(t)
	// A test that fails half-way still removes its pods, before crid
	// stops (cleanups run last first): their monitors and containers
	// would outlive the test otherwise, as they outlive crid by design.
	t.Cleanup(func() {
		pods, err := e.rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{})
		if err != nil {
			return
		}
		for _, p := range pods.Items {
			e.rt.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: p.Id})
			e.rt.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id})
		}
	})
	if _, err := e.img.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: e.image}}); err != nil {
		t.Fatal(err)
	}
	e.podCfg = harness.PodConfig("ctr-pod", func(c *runtime.PodSandboxConfig) {
		c.LogDirectory = e.logDir
		for _, edit := range podEdits {
			edit(c)
		}
	})
	e.pod = harness.RunPod(t, e.rt, e.podCfg)
	return e
}

func (e *ctrEnv) connect(t *testing.T) {
	conn, err := grpc.NewClient("unix://"+e.d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.rt, e.img = runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
}

func (e *ctrEnv) run(t *testing.T, name, script string) string {
	t.Helper()
	return e.start(t, &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Command: []string{"sh", "-c", script}})
}

// start creates and starts a container of the pod from cfg, of the test
// image and logging to NAME.log unless cfg says otherwise.
func (e *ctrEnv) start(t *testing.T, cfg *runtime.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	if cfg.Image == nil {
		cfg.Image = &runtime.ImageSpec{Image: e.image}
	}
	if cfg.LogPath == "" {
		cfg.LogPath = cfg.Metadata.Name + ".log"
	}
	resp, err := e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatal(err)
	}
	return resp.ContainerId
}

func (e *ctrEnv) status(t *testing.T, id string) *runtime.ContainerStatus {
	t.Helper()
	resp, err := e.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status
}

func (e *ctrEnv) waitExited(t *testing.T, id string) *runtime.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := e.status(t, id)
		if st.State == runtime.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %v", id, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestContainerRunsLogsAndExits(t *testing.T) {
	e := newCtrEnv(t, 10)
	id := e.run(t, "hello", "echo hello; echo oops >&2; hostname; exit 4")
	st := e.waitExited(t, id)
	if st.ExitCode != 4 || st.Reason != "Error" || st.StartedAt == 0 || st.FinishedAt < st.StartedAt {
		t.Fatalf("status %+v", st)
	}
	data, _ := os.ReadFile(filepath.Join(e.logDir, "hello.log"))
	for _, want := range []string{" stdout F hello\n", " stderr F oops\n", " stdout F ctr-pod\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}
	list, _ := e.rt.ListContainers(context.Background(), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: e.pod}})
	if len(list.Containers) != 1 || list.Containers[0].Id != id {
		t.Fatalf("list %v", list.Containers)
	}
	harness.RemovePod(t, e.rt, e.pod)
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), id) {
		t.Error("the container's root is still mounted after its pod was removed")
	}
}

func TestStopSignalsThenKills(t *testing.T) {
	e := newCtrEnv(t, 11)
	ctx := context.Background()
	polite := e.run(t, "polite", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done")
	stubborn := e.run(t, "stubborn", "trap '' TERM; while true; do sleep 0.1; done")
	time.Sleep(300 * time.Millisecond)
	if _, err := e.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: polite, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, polite); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("polite: %v exit %d %s", st.State, st.ExitCode, st.Reason)
	}
	start := time.Now()
	if _, err := e.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: stubborn, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second || took > 15*time.Second {
		t.Errorf("stop with a 1 s timeout took %v", took)
	}
	if st := e.status(t, stubborn); st.ExitCode != 137 {
		t.Errorf("stubborn: exit %d", st.ExitCode)
	}
	// Stopping again, or an unknown ID, succeeds; a stopped container
	// cannot be started again.
	if _, err := e.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: stubborn}); err != nil {
		t.Error(err)
	}
	if _, err := e.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: stubborn}); err == nil {
		t.Error("an exited container started again")
	}
	harness.RemovePod(t, e.rt, e.pod)
}

func TestContainersOutliveCrid(t *testing.T) {
	e := newCtrEnv(t, 12)
	long := e.run(t, "long", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
	short := e.run(t, "short", "sleep 1; exit 9")
	time.Sleep(200 * time.Millisecond)
	e.d.Stop(t, syscall.SIGKILL)
	time.Sleep(1500 * time.Millisecond) // short exits while crid is down

	logPath := filepath.Join(e.logDir, "long.log")
	before, _ := os.ReadFile(logPath)
	time.Sleep(500 * time.Millisecond)
	after, _ := os.ReadFile(logPath)
	if len(after) <= len(before) {
		t.Fatal("the container stopped logging when crid was killed")
	}
	e.d = harness.Start(t, cridBin, e.d.Dir)
	e.connect(t)
	if st := e.status(t, long); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after restart the running container is %v", st.State)
	}
	if st := e.status(t, short); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 9 {
		t.Errorf("an exit while crid was down: %v, code %d", st.State, st.ExitCode)
	}
	harness.RemovePod(t, e.rt, e.pod)
	if st, err := e.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: long}); err == nil {
		t.Errorf("a removed pod's container is still there: %v", st)
	}
}

func TestExecSync(t *testing.T) {
	e := newCtrEnv(t, 13)
	ctx := context.Background()
	id := e.run(t, "target", "echo $$ > /tmp/pid; sleep 300")
	time.Sleep(200 * time.Millisecond)
	resp, err := e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "hostname; cat /tmp/pid; pwd; echo err >&2; ls /proc/self/fd | wc -l; exit 3"}, Timeout: 10})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Stdout) != "ctr-pod\n1\n/\n4\n" || string(resp.Stderr) != "err\n" || resp.ExitCode != 3 {
		t.Fatalf("exec: stdout %q stderr %q code %d", resp.Stdout, resp.Stderr, resp.ExitCode)
	}
	// The exec sees the container's files and processes, not the host's.
	resp, _ = e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "ls /proc | grep -c '^[0-9]'; test -e /work && echo host-visible"}})
	if strings.Contains(string(resp.Stdout), "host-visible") || strings.TrimSpace(string(resp.Stdout)) > "9" {
		t.Errorf("exec is not confined to the container: %q", resp.Stdout)
	}
	start := time.Now()
	_, err = e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "60"}, Timeout: 1})
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("a timed-out exec: %v after %v", err, time.Since(start))
	}
	time.Sleep(200 * time.Millisecond)
	resp, _ = e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "pgrep 'sleep' | wc -l"}})
	if strings.TrimSpace(string(resp.Stdout)) != "1" {
		t.Errorf("the timed-out exec's sleep is still running: %q sleeps", resp.Stdout)
	}
	harness.RemovePod(t, e.rt, e.pod)
}

func TestUpdateContainerResourcesInPlace(t *testing.T) {
	e := newCtrEnv(t, 15)
	ctx := context.Background()
	id := e.run(t, "resized", "sleep 300")
	_, err := e.rt.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtime.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuQuota: 20000, CpuPeriod: 100000}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.rt.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: id})
	if err != nil || resp.Stats.Memory.GetAvailableBytes().GetValue() == 0 || resp.Stats.Memory.GetAvailableBytes().GetValue() > 96<<20 {
		t.Fatalf("after resize: %v, %v", resp.GetStats().GetMemory(), err)
	}
	// The status reports the limits now in force, which the kubelet
	// compares a resize against.
	st, err := e.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Status.GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 96<<20 || r.GetCpuQuota() != 20000 || r.GetCpuPeriod() != 100000 {
		t.Errorf("status resources after the resize: %+v", r)
	}
	// The container reads its own limits where runtimes look for them
	// (the JVM's heap, Go's GOMAXPROCS), the resize's values.
	read, err := e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Timeout: 10, Cmd: []string{"sh", "-c",
		"cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(read.Stdout)); len(got) < 2 || got[0] != strconv.Itoa(96<<20) || got[1] != "20000" {
		t.Errorf("the container reads its limits as %q, want %d and a 20000 quota", read.Stdout, 96<<20)
	}
	_, err = e.rt.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtime.LinuxContainerResources{CpuQuota: 10}})
	if err == nil || !strings.Contains(err.Error(), "cpu_quota") {
		t.Errorf("a bad quota: %v", err)
	}
	harness.RemovePod(t, e.rt, e.pod)
}

// An image mounted as a read-only volume is there, read-only, with its
// subpath; removing the container leaves the image's layers whole.
func TestImageVolume(t *testing.T) {
	e := newCtrEnv(t, 16)
	ctx := context.Background()
	resp, err := e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "vol"}, Image: &runtime.ImageSpec{Image: e.image},
		Command: []string{"sleep", "300"},
		Mounts: []*runtime.Mount{
			{ContainerPath: "/img", Readonly: true, Image: &runtime.ImageSpec{Image: e.image}},
			{ContainerPath: "/etc-of-img", Readonly: true, Image: &runtime.ImageSpec{Image: e.image}, ImageSubPath: "etc"},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.ContainerId
	if _, err := e.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	st := e.status(t, id)
	if len(st.Mounts) != 2 || st.Mounts[1].ContainerPath != "/etc-of-img" || st.Mounts[1].ImageSubPath != "etc" {
		t.Errorf("status mounts: %v", st.Mounts)
	}
	for _, m := range st.Mounts {
		if m.GetImage().GetImageRef() != st.ImageId {
			t.Errorf("status mount %s: image ref %q, want the image's ID %q", m.ContainerPath, m.GetImage().GetImageRef(), st.ImageId)
		}
	}
	out, err := e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "ls /img/bin/busybox /etc-of-img/passwd && touch /img/x 2>&1; /img/bin/busybox true && echo exec-ok"}})
	if err != nil {
		t.Fatal(err)
	}
	got := string(out.Stdout)
	for _, want := range []string{"/img/bin/busybox", "/etc-of-img/passwd", "Read-only file system", "exec-ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("image volume: output lacks %q:\n%s", want, got)
		}
	}
	_, err = e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "escape"}, Image: &runtime.ImageSpec{Image: e.image}, Command: []string{"true"},
		Mounts: []*runtime.Mount{{ContainerPath: "/x", Readonly: true, Image: &runtime.ImageSpec{Image: e.image}, ImageSubPath: "../../../etc"}},
	}})
	if err == nil {
		t.Error("a subpath climbing out of the image was accepted")
	}
	layers := filepath.Join(e.d.Dir, "root", "layers")
	before := countFiles(layers)
	harness.RemovePod(t, e.rt, e.pod)
	if after := countFiles(layers); after != before || before == 0 {
		t.Fatalf("the image's layers changed when the container went: %d files before, %d after", before, after)
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.Walk(dir, func(string, os.FileInfo, error) error { n++; return nil })
	return n
}

// TestAttachToATerminal: crictl attach -it, in a terminal of the test's
// own, reaches a container with a TTY: the client's size reaches the
// container's terminal, typed input is read there, the output comes back,
// and the log holds the container's lines.
func TestAttachToATerminal(t *testing.T) {
	harness.RequireRoot(t)
	crictl, err := exec.LookPath("crictl")
	if err != nil {
		t.Fatal("crictl is not on PATH: hack/install-deps.sh installs it")
	}
	e := newCtrEnv(t, 18)
	ctx := context.Background()
	resp, err := e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "tty"}, Image: &runtime.ImageSpec{Image: e.image},
		Command: []string{"sh", "-c", `read line; echo "got $line"`}, LogPath: "tty.log",
		Tty: true, Stdin: true, StdinOnce: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.ContainerId
	if _, err := e.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 77}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(crictl, "--runtime-endpoint", "unix://"+e.d.Socket, "attach", "-i", "-t", id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var out strings.Builder
	copied := make(chan struct{})
	go func() { io.Copy(&out, master); close(copied) }()
	// The client's terminal size is the container's once attach is up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"stty", "-F", "/dev/pts/0", "size"}, Timeout: 5})
		if err == nil && string(r.Stdout) == "33 77\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's terminal never took the client's size: %q, %v", r.GetStdout(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	master.Write([]byte("hello\r"))
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("crictl attach: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("crictl attach did not end; it printed %q", out.String())
	}
	master.Close()
	<-copied
	if !strings.Contains(out.String(), "got hello") {
		t.Errorf("attach output %q", out.String())
	}
	if st := e.waitExited(t, id); st.ExitCode != 0 {
		t.Errorf("exit %d", st.ExitCode)
	}
	log, _ := os.ReadFile(filepath.Join(e.logDir, "tty.log"))
	if !regexp.MustCompile(`(?m) stdout F got hello$`).Match(log) {
		t.Errorf("log:\n%s", log)
	}
	harness.RemovePod(t, e.rt, e.pod)
}

// TestUserNamespacePod: a pod with hostUsers: false. Its containers'
// root is the pod's mapped root (host UID 200000), owning the root
// filesystem and an idmapped volume; what it writes in the root
// filesystem is owned on the host by the mapped IDs; an exec joins the
// same user namespace; a second pod sharing its PID namespace works too;
// and removing the pods unpins every namespace.
func TestUserNamespacePod(t *testing.T) {
	const hostID = 200000
	mapping := func() []*runtime.IDMapping {
		return []*runtime.IDMapping{{ContainerId: 0, HostId: hostID, Length: 65536}}
	}
	usernsPod := func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping(), Gids: mapping()}
	}
	e := newCtrEnv(t, 19, usernsPod)
	ctx := context.Background()
	vol := t.TempDir() // 0700, the host's root's
	run := func(pod string, podCfg *runtime.PodSandboxConfig, name string) string {
		t.Helper()
		resp, err := e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: e.image},
			Command: []string{"sleep", "300"},
			Mounts:  []*runtime.Mount{{ContainerPath: "/vol", HostPath: vol}},
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: podCfg.Linux.SecurityContext.NamespaceOptions}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
			t.Fatal(err)
		}
		return resp.ContainerId
	}
	check := func(id, name string) {
		t.Helper()
		out, err := e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Timeout: 10, Cmd: []string{"sh", "-c",
			"cat /proc/self/uid_map; id -u; stat -c %u:%g / /etc/passwd /vol; touch /made-by-" + name + " /vol/" + name + " && echo wrote; echo x > /dev/null && echo null-ok"}})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(string(out.Stdout))
		want := []string{"0", strconv.Itoa(hostID), "65536", "0", "0:0", "0:0", "0:0", "wrote", "null-ok"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s in the pod's user namespace said %q (stderr %q), want %q", name, got, out.Stderr, want)
		}
		var st unix.Stat_t
		// The container's process runs as the mapped root on the host.
		resp, err := e.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		var info struct{ Pid int }
		json.Unmarshal([]byte(resp.Info["info"]), &info)
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.Pid))
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s`, hostID)).Match(status) {
			t.Errorf("%s's process (pid %d) on the host:\n%s", name, info.Pid, status)
		}
		// Through the root filesystem, the mapped IDs own what it wrote;
		// through the idmapped volume, the host's root does.
		if err := unix.Stat(fmt.Sprintf("/proc/%d/root/made-by-%s", info.Pid, name), &st); err != nil || st.Uid != hostID {
			t.Errorf("%s's new file in its root is owned by %d on the host (%v), want %d", name, st.Uid, err, hostID)
		}
		if err := unix.Stat(filepath.Join(vol, name), &st); err != nil || st.Uid != 0 {
			t.Errorf("%s's new file in the volume is owned by %d on the host (%v), want 0", name, st.Uid, err)
		}
	}
	check(run(e.pod, e.podCfg, "alone"), "alone")

	shared := harness.PodConfig("userns-shared-pid", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
		usernsPod(c)
	})
	sharedPod := harness.RunPod(t, e.rt, shared)
	check(run(sharedPod, shared, "shared"), "shared")
	st, err := e.rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: sharedPod})
	if err != nil {
		t.Fatal(err)
	}
	if u := st.Status.GetLinux().GetNamespaces().GetOptions().GetUsernsOptions(); u.GetMode() != runtime.NamespaceMode_POD || u.GetUids()[0].GetHostId() != hostID {
		t.Errorf("status userns options %v", u)
	}
	pinsOf := func() []string {
		pins, _ := filepath.Glob(filepath.Join(e.d.Dir, "run", "sandboxes", "*", "ns", "user"))
		return pins
	}
	if n := len(pinsOf()); n != 2 {
		t.Errorf("%d user namespaces pinned for 2 pods", n)
	}
	harness.RemovePod(t, e.rt, sharedPod)
	harness.RemovePod(t, e.rt, e.pod)
	if pins := pinsOf(); len(pins) > 0 {
		t.Errorf("pins left after the pods went: %v", pins)
	}
}

// TestContainerEvents: GetContainerEvents streams a container's created,
// started, stopped (it exits by itself) and deleted events in order, each
// with its pod's status and the container's, then the pod's own stop and
// delete; and crid's shutdown ends the stream instead of waiting for it.
func TestContainerEvents(t *testing.T) {
	e := newCtrEnv(t, 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := e.rt.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		id  string
		typ runtime.ContainerEventType
	}
	got := make(chan *runtime.ContainerEventResponse, 64)
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- ev
		}
	}()
	// The stream is up once an event comes through it: a probe pod's.
	for attempt := 0; ; attempt++ {
		probe := harness.RunPod(t, e.rt, harness.PodConfig(fmt.Sprintf("probe-%d", attempt), nil))
		heard := false
		for !heard {
			select {
			case ev := <-got:
				heard = ev.GetContainerId() == probe
				continue
			case <-time.After(time.Second):
			}
			break
		}
		harness.RemovePod(t, e.rt, probe)
		if heard {
			break
		}
		if attempt == 10 {
			t.Fatal("no event came through the stream")
		}
	}
	id := e.run(t, "brief", "exit 3")
	e.waitExited(t, id)
	if _, err := e.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	harness.RemovePod(t, e.rt, e.pod)
	want := []seen{
		{id, runtime.ContainerEventType_CONTAINER_CREATED_EVENT},
		{id, runtime.ContainerEventType_CONTAINER_STARTED_EVENT},
		{id, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{id, runtime.ContainerEventType_CONTAINER_DELETED_EVENT},
		{e.pod, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{e.pod, runtime.ContainerEventType_CONTAINER_DELETED_EVENT},
	}
	// next is the next event of the container or its pod (not a probe's).
	next := func() (*runtime.ContainerEventResponse, bool) {
		for {
			select {
			case ev, ok := <-got:
				if ok && ev.ContainerId != id && ev.ContainerId != e.pod {
					continue
				}
				return ev, ok
			case <-time.After(10 * time.Second):
				return nil, true
			}
		}
	}
	for i, w := range want {
		ev, ok := next()
		switch {
		case !ok:
			t.Fatalf("stream ended after %d events", i)
		case ev == nil:
			t.Fatalf("no event %d (%s %v)", i, w.id, w.typ)
		default:
			if ev.ContainerId != w.id || ev.ContainerEventType != w.typ || ev.CreatedAt == 0 {
				t.Fatalf("event %d: %s %v, want %s %v", i, ev.ContainerId, ev.ContainerEventType, w.id, w.typ)
			}
			if w.id == id && w.typ != runtime.ContainerEventType_CONTAINER_DELETED_EVENT {
				if ev.PodSandboxStatus.GetId() != e.pod || len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].Id != id {
					t.Errorf("event %d carries pod %q and %d container statuses", i, ev.PodSandboxStatus.GetId(), len(ev.ContainersStatuses))
				}
			}
			if w.typ == runtime.ContainerEventType_CONTAINER_STOPPED_EVENT && w.id == id && ev.ContainersStatuses[0].ExitCode != 3 {
				t.Errorf("stopped event reports exit %d", ev.ContainersStatuses[0].ExitCode)
			}
		}
	}
	// SIGTERM: crid stops without waiting for the stream's client.
	start := time.Now()
	e.d.Cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := <-got; ok {
		t.Error("an event after the last one")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("crid took %v to end an event stream at shutdown", d)
	}
}

// TestPodSandboxMetrics: a running container's metrics come from its
// cgroup, processes and layer, and its pod's from the pod's eth0, each
// series with as many label values as its descriptor has keys.
func TestPodSandboxMetrics(t *testing.T) {
	e := newCtrEnv(t, 21)
	ctx := context.Background()
	id := e.run(t, "busy", "dd if=/dev/zero of=/filler bs=1k count=512 2>/dev/null; exec sleep 300")
	time.Sleep(500 * time.Millisecond)
	descs, err := e.rt.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, d := range descs.Descriptors {
		keys[d.Name] = len(d.LabelKeys)
	}
	resp, err := e.rt.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.PodMetrics) != 1 || resp.PodMetrics[0].PodSandboxId != e.pod || len(resp.PodMetrics[0].ContainerMetrics) != 1 {
		t.Fatalf("pod metrics %v", resp.PodMetrics)
	}
	values := map[string]uint64{}
	check := func(m *runtime.Metric) {
		if n, ok := keys[m.Name]; !ok || n != len(m.LabelValues) {
			t.Errorf("%s: %d label values, descriptor has %d keys", m.Name, len(m.LabelValues), n)
		}
		// Keyed by name and the labels after id, name and image.
		values[strings.Join(append([]string{m.Name}, m.LabelValues[min(3, len(m.LabelValues)):]...), "/")] = m.Value.GetValue()
	}
	for _, m := range resp.PodMetrics[0].Metrics {
		check(m)
	}
	cm := resp.PodMetrics[0].ContainerMetrics[0]
	if cm.ContainerId != id {
		t.Errorf("container metrics of %s", cm.ContainerId)
	}
	for _, m := range cm.Metrics {
		check(m)
	}
	fsDev := filepath.Join(e.d.Dir, "root", "containers")
	for _, name := range []string{
		"container_memory_usage_bytes", "container_memory_working_set_bytes", "container_memory_cache",
		"container_processes", "container_threads", "container_file_descriptors", "container_start_time_seconds",
		"container_spec_cpu_period", "container_spec_cpu_shares",
		"container_fs_usage_bytes/" + fsDev, "container_fs_inodes_total/" + fsDev,
		"container_network_transmit_packets_total/eth0",
	} {
		if values[name] == 0 {
			t.Errorf("%s is 0", name)
		}
	}
	if t.Failed() {
		t.Logf("all: %v", values)
	}
	if u := values["container_fs_usage_bytes/"+fsDev]; u < 512<<10 {
		t.Errorf("writable layer usage %d after writing 512 KiB", u)
	}
	harness.RemovePod(t, e.rt, e.pod)
}

// A container's root may make device nodes (CAP_MKNOD, as Docker's
// default) but use only the devices it was given: /dev/fuse, which any
// process may open where it is allowed, stays shut; /dev/null and the
// rest work.
func TestDeviceRulesGuardHostDevices(t *testing.T) {
	e := newCtrEnv(t, 24)
	ctx := context.Background()
	id := e.run(t, "devices", "sleep 300")
	resp, err := e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c",
		"mknod /dev/f c 10 229 && echo made; (exec 3</dev/f) 2>&1 | grep -o 'Operation not permitted'; echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c; head -c 4 /dev/zero | wc -c"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resp.Stdout), "made\nOperation not permitted\nnull-ok\n4\n4\n"; got != want {
		t.Errorf("in the container: %q, want %q (stderr %q)", got, want, resp.Stderr)
	}
	harness.RemovePod(t, e.rt, e.pod)
}

// cgroupProcs lists what is in a container's cgroup, from the host (the
// memory hierarchy on v1, the unified one on v2).
func (e *ctrEnv) cgroupProcs(t *testing.T, id string) []string {
	t.Helper()
	resp, err := e.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Cgroup string `json:"cgroup"`
	}
	json.Unmarshal([]byte(resp.Info["info"]), &info)
	for _, dir := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		if data, err := os.ReadFile(filepath.Join(dir, info.Cgroup, "cgroup.procs")); err == nil {
			return strings.Fields(string(data))
		}
	}
	return nil
}

// A wrapper-script image: the entrypoint starts the real server as a
// child and waits, every process ignoring SIGTERM, one forking again.
// Stopping it must end all of them, in the pod's shared PID namespace
// (where the children are reparented to the infra process, not killed
// with the namespace) as in one of the container's own.
func TestStopKillsWhatTheMainProcessLeft(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  int
		pid  runtime.NamespaceMode
	}{
		{"shared PID namespace", 25, runtime.NamespaceMode_POD},
		{"container PID namespace", 26, runtime.NamespaceMode_CONTAINER},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCtrEnv(t, tc.net, func(c *runtime.PodSandboxConfig) {
				c.Linux.SecurityContext.NamespaceOptions.Pid = tc.pid
			})
			ctx := context.Background()
			id := e.run(t, "wrapper", `trap '' TERM; (trap '' TERM; sh -c "trap '' TERM; sleep 1000" & sleep 1000) & sleep 1000 & wait`)
			deadline := time.Now().Add(5 * time.Second)
			for len(e.cgroupProcs(t, id)) < 4 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if procs := e.cgroupProcs(t, id); len(procs) < 4 {
				t.Fatalf("the wrapper runs %d processes, want its 4 (the shell execs its last command)", len(procs))
			}
			start := time.Now()
			if _, err := e.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
				t.Fatalf("stop: %v after %v", err, time.Since(start))
			}
			if took := time.Since(start); took > 7*time.Second {
				t.Errorf("stop with a 2 s timeout took %v", took)
			}
			if st := e.status(t, id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
				t.Errorf("after stop: %v, exit %d", st.State, st.ExitCode)
			}
			if procs := e.cgroupProcs(t, id); len(procs) > 0 {
				t.Errorf("left running in the container's cgroup: %v", procs)
			}
			// A child that outlives the main process on its own is ended
			// when it exits, too.
			orphan := e.run(t, "orphan", `trap '' TERM; (trap '' TERM; sleep 1000) & exit 3`)
			st := e.waitExited(t, orphan)
			if procs := e.cgroupProcs(t, orphan); st.ExitCode != 3 || len(procs) > 0 {
				t.Errorf("a main process that exits 3 leaving a child: exit %d, left %v", st.ExitCode, procs)
			}
			harness.RemovePod(t, e.rt, e.pod)
		})
	}
}

// The kubelet sends, on every container, a limit of 0 for every huge page
// size the node has: on this host, whose hugetlb controller is not
// mounted, such a container must start. A pod that asks for huge pages
// the host cannot limit is refused, FailedPrecondition.
func TestKubeletHugepageLimitsStartOnThisHost(t *testing.T) {
	dirs, _ := filepath.Glob("/sys/kernel/mm/hugepages/hugepages-2048kB")
	if len(dirs) == 0 {
		t.Skip("no 2 MiB huge pages on this kernel: the kubelet would send no limit")
	}
	e := newCtrEnv(t, 27)
	ctx := context.Background()
	create := func(name string, limit uint64) (string, error) {
		resp, err := e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: e.pod, SandboxConfig: e.podCfg, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: e.image},
			Command: []string{"sh", "-c", "echo started"}, LogPath: name + ".log",
			Linux: &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{
				MemoryLimitInBytes: 64 << 20, CpuShares: 2,
				HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: limit}},
			}},
		}})
		if err != nil {
			return "", err
		}
		return resp.ContainerId, nil
	}
	id, err := create("zero", 0)
	if err != nil {
		t.Fatalf("the kubelet's zero hugepage limit: %v", err)
	}
	if _, err := e.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if st := e.waitExited(t, id); st.ExitCode != 0 {
		t.Errorf("exit %d", st.ExitCode)
	}
	_, err = create("asked", 4<<20)
	hugetlb := false
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		hugetlb = strings.Contains(string(data), ",hugetlb") || strings.Contains(string(data), " hugetlb")
	}
	switch {
	case hugetlb && err != nil:
		t.Errorf("a positive limit on a host with the controller: %v", err)
	case !hugetlb && status.Code(err) != codes.FailedPrecondition:
		t.Errorf("a positive limit on a host without the controller: %v, want FailedPrecondition", err)
	}
	harness.RemovePod(t, e.rt, e.pod)
}

// Environment variable names need not be shell identifiers (Kubernetes
// 1.34 took any printable name but '='; envFrom of a ConfigMap key
// data-1 gives one): they reach the process as given. (A shell may drop
// them before a command it runs: Debian's busybox ash does.)
func TestEnvNamesBeyondShellIdentifiers(t *testing.T) {
	e := newCtrEnv(t, 28)
	id := e.start(t, &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "env"}, Command: []string{"env"},
		Envs: []*runtime.KeyValue{{Key: "data-1", Value: []byte("value-1")}, {Key: "p.data 2", Value: []byte("value 2")}}})
	e.waitExited(t, id)
	data, _ := os.ReadFile(filepath.Join(e.logDir, "env.log"))
	for _, want := range []string{" stdout F data-1=value-1\n", " stdout F p.data 2=value 2\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}
}

// TestOOMKillSaysWhatFilledTheLimit: a container that fills 24 MiB of
// its pod's /dev/shm (tmpfs: page cache charged to it, which no reclaim
// frees without swap) and then grows a string until the kernel kills it
// is reported OOMKilled with what filled its 64 MiB: the page cache read
// at the kill within a few MiB of what it wrote, the rest anon, the
// victim named. On a host's `free` nothing of it would show. The same
// goes to crid's log at warning and to the kill counter, whose series
// goes when the container does.
func TestOOMKillSaysWhatFilledTheLimit(t *testing.T) {
	addr := harness.FreeLoopbackAddr(t)
	e := newCtrEnvConfig(t, 32, fmt.Sprintf("[metrics]\naddress = %q", addr))
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "hog"},
		Labels:   kubeletLabels("shop", "web-1", "hog"),
		Command: []string{"sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; " +
			"head -c 268435456 /dev/zero | tail -n 1 >/dev/null"},
		Linux: &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}},
	}
	id := e.start(t, cfg)
	st := e.waitExited(t, id)
	if st.Reason != "OOMKilled" {
		t.Fatalf("reason %q, message %q", st.Reason, st.Message)
	}
	t.Logf("message: %s", st.Message)
	m := regexp.MustCompile(`^OOMKilled: limit 64Mi; anon ([0-9.]+)(Ki|Mi), page cache ([0-9.]+)Mi \(active [0-9.]+(Ki|Mi)?, tmpfs ([0-9.]+)Mi\), kernel [0-9.]+(Ki|Mi)?; process (\S+) \(pid \d+\) killed`).FindStringSubmatch(st.Message)
	if m == nil {
		t.Fatalf("message %q does not explain the kill", st.Message)
	}
	cache, _ := strconv.ParseFloat(m[3], 64)
	if cache < 22 || cache > 30 {
		t.Errorf("page cache %.1fMi at the kill, want the 24Mi written (within 22..30)", cache)
	}
	anon, _ := strconv.ParseFloat(m[1], 64)
	if m[2] == "Ki" {
		anon /= 1024
	}
	if anon+cache < 56 || anon+cache > 64 {
		t.Errorf("anon %.1fMi + page cache %.1fMi: want them to fill the 64Mi limit", anon, cache)
	}
	if tmpfs, _ := strconv.ParseFloat(m[5], 64); tmpfs < 22 || tmpfs > 26 {
		t.Errorf("tmpfs %.1fMi, want the 24Mi written to /dev/shm", tmpfs)
	}
	if m[7] != "tail" {
		t.Errorf("victim %q, want tail (the largest)", m[7])
	}

	series := `{container="hog",namespace="shop",pod="web-1"}`
	if n, ok := seriesValue(scrapeMetrics(t, addr), "crid_container_oom_kills_total", series); !ok || n != 1 {
		t.Errorf("crid_container_oom_kills_total%s = %v (served %v), want 1", series, n, ok)
	}
	if _, err := e.rt.RemoveContainer(context.Background(), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if body := scrapeMetrics(t, addr); strings.Contains(body, `container="hog"`) {
		t.Errorf("the removed container's series are still served:\n%s", grepLines(body, `container="hog"`))
	}
	harness.RemovePod(t, e.rt, e.pod)
	e.d.Stop(t, syscall.SIGTERM)
	line := grepLines(e.d.Log.String(), `"Container OOM-killed"`)
	for _, want := range []string{`level="warning"`, `podName="shop/web-1"`, `container="` + id + `"`, `name="hog"`, "limit=67108864", "victim=\"tail\""} {
		if !strings.Contains(line, want) {
			t.Errorf("crid's OOM line lacks %s: %q", want, line)
		}
	}
}

// TestPodLimitOOMKillSaysWhose: with a limit on the pod's cgroup and none
// on the container's, the kill is the pod's doing and the message says
// so, naming the pod's cgroup, so nobody looks for a container limit that
// is not there.
func TestPodLimitOOMKillSaysWhose(t *testing.T) {
	e := newCtrEnv(t, 34, func(c *runtime.PodSandboxConfig) {
		c.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 48 << 20}
	})
	id := e.start(t, &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "hog"},
		Command:  []string{"sh", "-c", "head -c 268435456 /dev/zero | tail -n 1 >/dev/null"},
	})
	st := e.waitExited(t, id)
	t.Logf("reason %s, message: %s", st.Reason, st.Message)
	if st.Reason != "OOMKilled" {
		t.Fatalf("reason %q, want OOMKilled", st.Reason)
	}
	pod, err := e.rt.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: e.pod, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Cgroup string }
	json.Unmarshal([]byte(pod.Info["info"]), &info)
	want := "OOMKilled: the memory limit of " + info.Cgroup + " (48Mi, the pod's, not the container's) ran out; the pod held anon "
	if info.Cgroup == "" || !strings.HasPrefix(st.Message, want) {
		t.Errorf("message %q, want it to begin %q", st.Message, want)
	}
	if !strings.Contains(st.Message, "; process tail (pid ") {
		t.Errorf("message %q does not name the victim", st.Message)
	}
}

// kubeletLabels are the labels the kubelet puts on a container.
func kubeletLabels(namespace, pod, name string) map[string]string {
	return map[string]string{"io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.name": pod,
		"io.kubernetes.container.name": name}
}

// scrapeMetrics is crid's metrics endpoint's answer.
func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// seriesValue is the value of name with the labels given, as written in
// the text format (sorted by name).
func seriesValue(body, name, labels string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+labels+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestCPUThrottlingIsReported: a busy loop under a tenth of a CPU is
// throttled in nearly every CFS period; crid's watch (a 1 s window here)
// says so on the metrics endpoint (ratio and counters, named by the
// kubelet's labels) and in its log. The series go with the container.
func TestCPUThrottlingIsReported(t *testing.T) {
	addr := harness.FreeLoopbackAddr(t)
	e := newCtrEnvConfig(t, 33, fmt.Sprintf("[metrics]\naddress = %q\nthrottle_window = \"1s\"", addr))
	id := e.start(t, &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "spin"},
		Labels:   kubeletLabels("shop", "web-1", "spin"),
		Command:  []string{"sh", "-c", "while :; do :; done"},
		Linux:    &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 10000}},
	})
	series := `{container="spin",namespace="shop",pod="web-1"}`
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		body = scrapeMetrics(t, addr)
		if ratio, ok := seriesValue(body, "crid_container_cpu_throttled_ratio", series); ok && ratio > 0.5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reported throttled; the endpoint says:\n%s", grepLines(body, "throttled"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n, ok := seriesValue(body, "crid_container_cpu_throttled_periods_total", series); !ok || n < 5 {
		t.Errorf("throttled periods %v", n)
	}
	if s, ok := seriesValue(body, "crid_container_cpu_throttled_seconds_total", series); !ok || s <= 0 {
		t.Errorf("throttled seconds %v", s)
	}
	harness.RemovePod(t, e.rt, e.pod)
	if body := scrapeMetrics(t, addr); strings.Contains(body, `container="spin"`) {
		t.Errorf("the removed container's series are still served:\n%s", grepLines(body, `container="spin"`))
	}
	e.d.Stop(t, syscall.SIGTERM)
	log := e.d.Log.String()
	if !strings.Contains(log, `"Container CPU-throttled"`) || !strings.Contains(log, `container="`+id+`"`) || !strings.Contains(log, "cpus=0.1") {
		t.Errorf("no throttling line for %s in crid's log:\n%s", id, grepLines(log, "throttl"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSeccompProgramCompiledAtCreate: crid compiles a container's seccomp
// profile once, at create, into its bundle; the init and every exec load
// that program (one filter, in every thread) instead of compiling it.
func TestSeccompProgramCompiledAtCreate(t *testing.T) {
	e := newCtrEnv(t, 38)
	ctx := context.Background()
	id := e.start(t, &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "confined"},
		Command: []string{"sh", "-c", "grep -E '^Seccomp' /proc/self/status > /tmp/init-status; sleep 300"},
		Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}}}})
	prog, err := os.ReadFile(filepath.Join(e.d.Dir, "run", "containers", id, "seccomp.bpf"))
	if err != nil || len(prog) == 0 || len(prog)%8 != 0 {
		t.Fatalf("the bundle's compiled filter: %d bytes, %v", len(prog), err)
	}
	want := "Seccomp:\t2\nSeccomp_filters:\t1\n"
	deadline := time.Now().Add(10 * time.Second)
	var resp *runtime.ExecSyncResponse
	for time.Now().Before(deadline) {
		resp, err = e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/tmp/init-status"}, Timeout: 10})
		if err == nil && resp.ExitCode == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(resp.Stdout) != want {
		t.Errorf("the container's process: %q, %v; want %q", resp.GetStdout(), err, want)
	}
	resp, err = e.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"grep", "-E", "^Seccomp", "/proc/self/status"}, Timeout: 10})
	if err != nil || string(resp.Stdout) != want {
		t.Errorf("an exec: %q, %v; want %q", resp.GetStdout(), err, want)
	}
	harness.RemovePod(t, e.rt, e.pod)
}
