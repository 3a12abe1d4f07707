package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crid-dev/crid/pkg/netns"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/test/harness"
)

type podInfo struct {
	Namespaces sandbox.Namespaces `json:"namespaces"`
	InfraPID   int                `json:"infraPid"`
	Cgroup     string             `json:"cgroup"`
	// NetworkCheck is "ok" or why CNI CHECK failed.
	NetworkCheck string `json:"networkCheck"`
}

func inspect(t *testing.T, rt runtime.RuntimeServiceClient, id string) (*runtime.PodSandboxStatus, podInfo) {
	t.Helper()
	resp, err := rt.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info podInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatal(err)
	}
	return resp.Status, info
}

// listenIn starts a TCP server in a pod's network namespace that answers
// each connection with msg; it stops with the test.
func listenIn(t *testing.T, nsPath, addr, msg string) {
	t.Helper()
	var l net.Listener
	err := netns.InNet(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	acceptEach(t, l, func(c net.Conn) {
		c.Write([]byte(msg))
		c.Close()
	})
}

// acceptEach hands each connection l accepts to handle, in the accepting
// goroutine, until the test ends and closes l.
func acceptEach(t *testing.T, l net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
}

func readFrom(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	data, err := io.ReadAll(c)
	return string(data), err
}

func TestTwoPodsReachEachOtherByPodIP(t *testing.T) {
	_, d := podDaemon(t, 1)
	rt := d.Client(t)
	a := harness.RunPod(t, rt, harness.PodConfig("pod-a", nil))
	b := harness.RunPod(t, rt, harness.PodConfig("pod-b", nil))
	defer harness.RemovePod(t, rt, a)
	defer harness.RemovePod(t, rt, b)

	stA, infoA := inspect(t, rt, a)
	stB, infoB := inspect(t, rt, b)
	if stA.State != runtime.PodSandboxState_SANDBOX_READY || !strings.HasPrefix(stA.Network.Ip, "10.201.0.") || stB.Network.Ip == stA.Network.Ip {
		t.Fatalf("pod IPs %q and %q", stA.Network.Ip, stB.Network.Ip)
	}
	listenIn(t, infoB.Namespaces.Net, ":8080", "hello from b")
	var got string
	err := netns.InNet(infoA.Namespaces.Net, func() error {
		var err error
		got, err = readFrom(net.JoinHostPort(stB.Network.Ip, "8080"))
		return err
	})
	if err != nil || got != "hello from b" {
		t.Fatalf("pod a to pod b: %q, %v", got, err)
	}
	// What went over the wire shows in b's stats, the kubelet's summary
	// API's pod network figures.
	st, err := rt.PodSandboxStats(context.Background(), &runtime.PodSandboxStatsRequest{PodSandboxId: b})
	if err != nil {
		t.Fatal(err)
	}
	eth := st.GetStats().GetLinux().GetNetwork().GetDefaultInterface()
	if ifs := st.GetStats().GetLinux().GetNetwork().GetInterfaces(); len(ifs) != 1 || ifs[0].GetName() != "eth0" ||
		eth.GetName() != "eth0" || eth.GetRxBytes().GetValue() == 0 || eth.GetTxBytes().GetValue() < uint64(len("hello from b")) {
		t.Errorf("pod b's network stats %+v, want eth0 with bytes both ways", st.GetStats().GetLinux().GetNetwork())
	}
}

func TestHostPortReachesThePod(t *testing.T) {
	_, d := podDaemon(t, 2)
	rt := d.Client(t)
	hostPort := 31000 + os.Getpid()%1000
	id := harness.RunPod(t, rt, harness.PodConfig("web", func(c *runtime.PodSandboxConfig) {
		c.PortMappings = []*runtime.PortMapping{{ContainerPort: 8080, HostPort: int32(hostPort)}}
	}))
	defer harness.RemovePod(t, rt, id)
	_, info := inspect(t, rt, id)
	listenIn(t, info.Namespaces.Net, ":8080", "hello through the host port")
	got, err := readFrom(fmt.Sprintf("127.0.0.1:%d", hostPort))
	if err != nil || got != "hello through the host port" {
		t.Fatalf("127.0.0.1:%d: %q, %v", hostPort, got, err)
	}
}

func TestHostNetworkPod(t *testing.T) {
	_, d := podDaemon(t, 3)
	rt := d.Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("hostnet", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	}))
	defer harness.RemovePod(t, rt, id)
	st, info := inspect(t, rt, id)
	if info.Namespaces.Net != "" || info.Namespaces.UTS != "" || st.Network.Ip != "" {
		t.Fatalf("a host-network pod got a network of its own: %+v, ip %q", info.Namespaces, st.Network.Ip)
	}
	if st.Linux.Namespaces.Options.Network != runtime.NamespaceMode_NODE {
		t.Errorf("status network mode %v", st.Linux.Namespaces.Options.Network)
	}
	// Network sysctls would change the node: refused.
	_, err := rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: harness.PodConfig("hostnet-sysctl", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
		c.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	})})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "host's network namespace") {
		t.Fatalf("net sysctl on a host-network pod: %v", err)
	}
}

func TestSharedPIDNamespaceReapsOrphans(t *testing.T) {
	_, d := podDaemon(t, 4)
	rt := d.Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("shared-pid", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	}))
	defer harness.RemovePod(t, rt, id)
	_, info := inspect(t, rt, id)
	if info.InfraPID == 0 || info.Namespaces.PID == "" {
		t.Fatalf("no infra process for a shared PID namespace: %+v", info)
	}
	// It runs in a cgroup of its own under the pod's: in the memory and
	// pids hierarchies on cgroup v1, in the one hierarchy on v2.
	cgs, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", info.InfraPID))
	want := []string{":memory:", ":pids:"}
	if !strings.Contains(string(cgs), ":memory:") {
		want = []string{"0::"}
	}
	for _, w := range want {
		if !strings.Contains(string(cgs), w+info.Cgroup+"/") {
			t.Errorf("the infra process is not under the pod's cgroup %s in %s:\n%s", info.Cgroup, w, cgs)
		}
	}
	// Not dumpable: a process of its UID (root, as a container's) without
	// CAP_SYS_PTRACE may not follow its root and cwd links (/proc/1/root
	// to the pod's containers).
	if out, err := exec.Command("setpriv", "--bounding-set=-sys_ptrace", "ls", fmt.Sprintf("/proc/%d/root/", info.InfraPID)).CombinedOutput(); err == nil {
		t.Errorf("root without CAP_SYS_PTRACE listed the infra process's root (%q): it is dumpable", out)
	}
	// The infra process made the pod's UTS and network namespaces: it
	// named the host and brought lo up.
	if out, _ := exec.Command("nsenter", "--uts="+info.Namespaces.UTS, "hostname").Output(); strings.TrimSpace(string(out)) != "shared-pid" {
		t.Errorf("hostname in the pod: %q", out)
	}
	// (ip asks the namespace by netlink; /sys/class/net is the host's.)
	if out, err := exec.Command("nsenter", "--net="+info.Namespaces.Net, "ip", "-o", "link", "show", "lo").Output(); err != nil || !strings.Contains(string(out), ",UP,") {
		t.Errorf("lo in the pod is not up: %q, %v", out, err)
	}
	// A process in the pod's PID namespace starts a child and exits at
	// once: the child is orphaned to the infra process, which must reap it
	// when it ends.
	out, err := exec.Command("nsenter", "--pid="+info.Namespaces.PID, "--", "sh", "-c", "sleep 2 >/dev/null 2>&1 </dev/null & echo $!").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	orphan := findChild(t, info.InfraPID, "sleep")
	if orphan == 0 {
		t.Fatal("the orphan was not reparented to the infra process")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan))
		if err != nil {
			break // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphan %d was not reaped: %s", orphan, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findChild returns a child of parent whose comm is name.
func findChild(t *testing.T, parent int, name string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(data)
		comm := s[strings.IndexByte(s, '(')+1 : strings.LastIndexByte(s, ')')]
		var ppid int
		fmt.Sscan(strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[1], &ppid)
		if ppid == parent && comm == name {
			return pid
		}
	}
	return 0
}

// leaks counts what a pod makes on the host.
type leaks struct{ mounts, veths, cgroups, netnsFiles, infra int }

func countLeaks(t *testing.T, dir string) leaks {
	t.Helper()
	var l leaks
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	l.mounts = strings.Count(string(mi), dir)
	links, _ := os.ReadDir("/sys/class/net")
	for _, e := range links {
		if strings.HasPrefix(e.Name(), "veth") {
			l.veths++
		}
	}
	filepath.Walk("/sys/fs/cgroup/memory/crid", func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			l.cgroups++
		}
		return nil
	})
	filepath.Walk(filepath.Join(dir, "run"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && filepath.Base(filepath.Dir(p)) == "ns" {
			l.netnsFiles++
		}
		return nil
	})
	out, _ := exec.Command("pgrep", "-f", "crid infra").Output()
	l.infra = len(strings.Fields(string(out)))
	return l
}

func TestFailedCNIAddLeavesNothing(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	// A plugin after the bridge that fails ADD: the bridge has made a veth
	// and taken an IP by then, and both must be given back.
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "fail"), []byte("#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"refused by the test\"}'; exit 1; fi\nexit 0\n"), 0o755)
	harness.PodNet(t, dir, 5, `{"type":"fail"}`)
	d := harness.Start(t, cridBin, dir, "--cni-plugin-dir", "/usr/lib/cni:/opt/cni/bin:"+bin)
	rt := d.Client(t)
	before := countLeaks(t, dir)
	_, err := rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: harness.PodConfig("doomed", nil)})
	if err == nil || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("RunPodSandbox with a failing plugin: %v", err)
	}
	if after := countLeaks(t, dir); after != before {
		t.Fatalf("a failed RunPodSandbox leaked: before %+v, after %+v", before, after)
	}
	list, _ := rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{})
	if len(list.Items) != 0 {
		t.Fatalf("a failed sandbox is listed: %v", list.Items)
	}
	ipam, _ := os.ReadDir(filepath.Join(dir, "ipam", "crid-it-5"))
	for _, e := range ipam {
		if strings.HasPrefix(e.Name(), "10.") {
			t.Errorf("IP %s is still leased", e.Name())
		}
	}
	// The name was released: the same pod works once the network does.
	harness.PodNet(t, dir, 5)
	id := harness.RunPod(t, rt, harness.PodConfig("doomed", nil))
	harness.RemovePod(t, rt, id)
}

func TestNameIsReservedUntilRemoved(t *testing.T) {
	_, d := podDaemon(t, 6)
	rt := d.Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("once", nil))
	_, err := rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: harness.PodConfig("once", nil)})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "reserved") || !strings.Contains(err.Error(), id) {
		t.Fatalf("second RunPodSandbox: %v", err)
	}
	harness.RemovePod(t, rt, id)
	harness.RemovePod(t, rt, id) // idempotent
	id = harness.RunPod(t, rt, harness.PodConfig("once", nil))
	harness.RemovePod(t, rt, id)
}

func TestFiftyCyclesLeakNothing(t *testing.T) {
	dir, d := podDaemon(t, 7)
	rt := d.Client(t)
	// One cycle first: the bridge and the cgroup parent are made once and kept.
	harness.RemovePod(t, rt, harness.RunPod(t, rt, harness.PodConfig("warm", nil)))
	before := countLeaks(t, dir)
	for i := range 50 {
		pid := runtime.NamespaceMode_CONTAINER
		if i%5 == 0 {
			pid = runtime.NamespaceMode_POD
		}
		id := harness.RunPod(t, rt, harness.PodConfig(fmt.Sprintf("cycle-%d", i), func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = pid
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_local_port_range": "20000 30000", "kernel.shm_rmid_forced": "1"}
		}))
		harness.RemovePod(t, rt, id)
	}
	if after := countLeaks(t, dir); after != before {
		t.Fatalf("50 create/remove cycles leaked: before %+v, after %+v", before, after)
	}
}

func TestPodSurvivesDaemonKill(t *testing.T) {
	dir, d := podDaemon(t, 8)
	rt := d.Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("survivor", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	}))
	_, info := inspect(t, rt, id)
	d.Stop(t, syscall.SIGKILL)
	if err := syscall.Kill(info.InfraPID, 0); err != nil {
		t.Fatalf("the infra process died with crid: %v", err)
	}
	rt = harness.Start(t, cridBin, dir).Client(t)
	st, info2 := inspect(t, rt, id)
	if st.State != runtime.PodSandboxState_SANDBOX_READY || info2.InfraPID != info.InfraPID {
		t.Fatalf("after restart: %v, infra %d (was %d)", st.State, info2.InfraPID, info.InfraPID)
	}
	if info2.NetworkCheck != "ok" {
		t.Errorf("CNI CHECK of the surviving pod: %s", info2.NetworkCheck)
	}
	harness.RemovePod(t, rt, id)
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", info.InfraPID)); err == nil && !strings.Contains(string(data), ") Z ") {
		t.Errorf("the infra process outlived RemovePodSandbox: %s", data)
	}
}

// A descriptor crid inherited (a shell's, a CI runner's pipe) reaches
// none of what outlives crid, the pod's monitor and infra process: a
// runner waiting for its pipe's EOF would wait for the node's last pod.
func TestInheritedDescriptorsStayWithCrid(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Past the descriptors crid's children are given (a monitor's and an
	// infra process's fd 3), which would cover it.
	d := harness.StartCmd(t, cridBin, dir, func(cmd *exec.Cmd) { cmd.ExtraFiles = append(make([]*os.File, 20), w) })
	w.Close()
	rt := d.Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("inherits", func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
		c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	}))
	_, info := inspect(t, rt, id)
	if len(harness.Monitors(dir)) == 0 || info.InfraPID == 0 {
		t.Fatalf("no monitor or infra process to check: monitors %v, infra %d", harness.Monitors(dir), info.InfraPID)
	}
	d.Stop(t, syscall.SIGKILL)
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("crid's inherited pipe is held past it (read %d, %v): monitors %v, infra %d", n, err, harness.Monitors(dir), info.InfraPID)
	}
	rt = harness.Start(t, cridBin, dir).Client(t)
	harness.RemovePod(t, rt, id)
}

func TestVerboseStatusChecksTheNetwork(t *testing.T) {
	_, d := podDaemon(t, 17)
	rt := d.Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("checked", nil))
	defer harness.RemovePod(t, rt, id)
	_, info := inspect(t, rt, id)
	if info.NetworkCheck != "ok" {
		t.Fatalf("CNI CHECK of a fresh pod: %s", info.NetworkCheck)
	}
	if out, err := exec.Command("nsenter", "--net="+info.Namespaces.Net, "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("break the pod network: %v: %s", err, out)
	}
	if _, info = inspect(t, rt, id); info.NetworkCheck == "ok" {
		t.Fatal("CNI CHECK passed a pod whose eth0 is gone")
	}
}

func TestDualStackPodAndItsSysctls(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { exec.Command("ip", "link", "del", "critestds").Run() }) // after crid's stop
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"crid-it-ds","plugins":[{"type":"bridge","bridge":"critestds","isGateway":true,
	  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.209.0.0/24"}],[{"subnet":"fd00:c1d::/64"}]],"dataDir":"%s/ipam"}}]}`, dir)
	os.MkdirAll(filepath.Join(dir, "net.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "net.d", "10-ds.conflist"), []byte(conf), 0o644)
	rt := harness.Start(t, cridBin, dir).Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("dual", func(c *runtime.PodSandboxConfig) {
		c.Linux.Sysctls = map[string]string{"net.ipv4.ip_local_port_range": "20000 30000", "kernel.shm_rmid_forced": "1"}
	}))
	defer harness.RemovePod(t, rt, id)
	st, info := inspect(t, rt, id)
	if !strings.HasPrefix(st.Network.Ip, "10.209.0.") || len(st.Network.AdditionalIps) != 1 || !strings.HasPrefix(st.Network.AdditionalIps[0].Ip, "fd00:c1d::") {
		t.Fatalf("dual-stack IPs: %q + %v", st.Network.Ip, st.Network.AdditionalIps)
	}
	var portRange string
	netns.InNet(info.Namespaces.Net, func() error {
		data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		portRange = strings.Join(strings.Fields(string(data)), " ")
		return err
	})
	if portRange != "20000 30000" {
		t.Errorf("net.ipv4.ip_local_port_range in the pod is %q", portRange)
	}
	if host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); strings.Join(strings.Fields(string(host)), " ") == "20000 30000" {
		t.Error("the pod's sysctl changed the host")
	}
	out, err := exec.Command("nsenter", "--ipc="+info.Namespaces.IPC, "cat", "/proc/sys/kernel/shm_rmid_forced").Output()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("kernel.shm_rmid_forced in the pod: %q, %v", out, err)
	}
	out, _ = exec.Command("nsenter", "--uts="+info.Namespaces.UTS, "hostname").Output()
	if strings.TrimSpace(string(out)) != "dual" {
		t.Errorf("hostname in the pod: %q", out)
	}
}

func TestInfraProcessTakesThePodsIdentity(t *testing.T) {
	_, d := podDaemon(t, 14)
	rt := d.Client(t)
	id := harness.RunPod(t, rt, harness.PodConfig("identity", func(c *runtime.PodSandboxConfig) {
		sc := c.Linux.SecurityContext
		sc.NamespaceOptions.Pid = runtime.NamespaceMode_POD
		sc.RunAsUser = &runtime.Int64Value{Value: 65534}
		sc.RunAsGroup = &runtime.Int64Value{Value: 65534}
		sc.SupplementalGroups = []int64{1234}
		sc.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	}))
	defer harness.RemovePod(t, rt, id)
	_, info := inspect(t, rt, id)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.InfraPID))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534", "Gid:\t65534\t65534", "Groups:\t1234", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("infra process status lacks %q", want)
		}
	}
	// The pod's containers reach its root as /proc/1/root: an empty one,
	// not the host's (the hostile-tenant suite attacks it).
	if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root", info.InfraPID)); err != nil || len(entries) != 0 {
		t.Errorf("the infra process's root holds %d entries (%v), want an empty one", len(entries), err)
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", info.InfraPID)); err != nil || cwd != "/" {
		t.Errorf("the infra process's working directory is %q (%v), want its root", cwd, err)
	}
	// Not dumpable (so its /proc files are root's): a change of UID makes
	// it so, and TestSharedPIDNamespaceReapsOrphans checks a root infra.
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/environ", info.InfraPID), &st); err != nil || st.Uid != 0 {
		t.Errorf("the infra process's /proc files are UID %d's (%v): it is dumpable", st.Uid, err)
	}
}

// podDaemon starts a crid of its own on pod network n, for a test that
// runs pods, and answers with its directory and the daemon.
func podDaemon(t *testing.T, n int) (string, *harness.Daemon) {
	t.Helper()
	harness.RequireRoot(t)
	dir := t.TempDir()
	harness.PodNet(t, dir, n)
	return dir, harness.Start(t, cridBin, dir)
}
