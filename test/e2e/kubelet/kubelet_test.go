// Package kubelet runs a real kubelet, standalone, on crid: static pod
// manifests, the cgroupfs driver, a cgroup root of its own, serving on
// loopback only, images pulled through crid from a loopback registry. It
// checks what a kubelet's users see, through the kubelet's own pod status
// endpoint and crictl, and prints each check with its verdict and timings.
//
// A running kubelet kills processes in cgroups under its cgroup root that
// it does not know: the suite uses /crid-e2e, never /kubepods, and must
// not run beside other suites of crid that use the kubelet's cgroups.
//
// The kubelet is built from k8s.io/kubernetes through the module proxy by
// test/e2e/build-k8s.sh, cached under _output/k8s/VERSION. Root only.
package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/test/harness"
)

// Version is the kubelet the suite runs.
const Version = "v1.37.2"

// cgroupRoot is the kubelet's own, apart from any other kubelet's.
const cgroupRoot = "/crid-e2e"

var cridBin, kubeletBin string

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		out, err := exec.Command("../build-k8s.sh", "kubelet", Version).Output()
		if err != nil {
			fmt.Printf("kubelet e2e: build the kubelet %s: %v\n", Version, err)
			os.Exit(1)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		kubeletBin = lines[len(lines)-1]
	}
	harness.Main(m, "kubelet-e2e", "../../..", &cridBin)
}

// node is crid and a kubelet on it, with what the checks need.
type node struct {
	t         *testing.T // the check running now, for its failures
	top       *testing.T // the whole suite, which owns crid and the kubelet
	dir       string
	crid      *harness.Daemon
	rt        runtime.RuntimeServiceClient
	kubelet   *exec.Cmd
	kubeDone  chan error
	manifests string
	podLogs   string
	roPort    string // the kubelet's read-only port, on loopback
	image     string
}

func newNode(t *testing.T) *node {
	harness.RequireRoot(t)
	n := &node{t: t, top: t, dir: t.TempDir()}
	n.manifests = filepath.Join(n.dir, "manifests")
	n.podLogs = filepath.Join(n.dir, "pod-logs")
	os.MkdirAll(n.manifests, 0o755)
	reg := harness.StartRegistry(t, "", "")
	n.image = reg.Addr + "/busybox:e2e"
	harness.PushBusybox(t, n.image)

	// The kubelet's cgroup root, in every hierarchy, before it starts.
	h, err := cgroups.Discover()
	if err != nil {
		t.Fatal(err)
	}
	root, err := h.Manager(cgroupRoot)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Create(&cgroups.Resources{}); err != nil {
		t.Fatal(err)
	}
	// The kubelet wants its root in every hierarchy, the named systemd
	// one too, which crid does not use; it also makes it in the hybrid
	// layout's empty cgroup2.
	named := "/sys/fs/cgroup/systemd" + cgroupRoot
	if _, err := os.Stat("/sys/fs/cgroup/systemd"); err == nil {
		os.Mkdir(named, 0o755)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		root.Destroy(ctx)
		removeTree(named)
		if h.Mode == cgroups.Hybrid {
			removeTree("/sys/fs/cgroup/unified" + cgroupRoot)
		}
	})

	// The kubelet's and crid's logs outlive the run, for a failure's
	// reader: _output/e2e-kubelet/.
	t.Cleanup(func() {
		keep := filepath.Join("..", "..", "..", "_output", "e2e-kubelet")
		os.MkdirAll(keep, 0o755)
		if data, err := os.ReadFile(filepath.Join(n.dir, "kubelet.log")); err == nil {
			os.WriteFile(filepath.Join(keep, "kubelet.log"), data, 0o644)
		}
		if n.crid != nil {
			os.WriteFile(filepath.Join(keep, "crid.log"), n.crid.Log.Bytes(), 0o644)
		}
	})
	// The kubelet makes its device plugin socket in
	// /var/lib/kubelet/device-plugins whatever --root-dir says (the path
	// is a constant of the device plugin API), and its links to container
	// logs in /var/log/containers whatever podLogsDir says: what of them
	// the host did not have goes again.
	var made []string
	for _, p := range []string{"/var/lib/kubelet", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet/device-plugins/kubelet.sock", "/var/log/containers"} {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			made = append(made, p)
		}
	}
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	})
	harness.PodNet(t, n.dir, 51)
	n.startCrid()
	n.startKubelet()
	return n
}

func (n *node) startCrid() {
	n.crid = harness.Start(n.top, cridBin, n.dir)
	rt := n.crid.Client(n.top)
	n.rt = rt
	// Pods outlive crid by design: the suite removes them before this
	// crid stops (cleanups run last first; the kubelet, started later, is
	// stopped before, so it does not make them again).
	n.top.Cleanup(func() { harness.RemoveAllPods(rt) })
}

// startKubelet runs the kubelet standalone on crid, serving on loopback
// ports of its own, and waits for it to be healthy.
func (n *node) startKubelet() {
	t := n.top
	cfgPath := filepath.Join(n.dir, "kubelet.yaml")
	if _, err := os.Stat(cfgPath); err != nil {
		port, healthz := harness.FreeLoopbackAddr(t), harness.FreeLoopbackAddr(t)
		n.roPort = harness.FreeLoopbackAddr(t)
		portOf := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
		cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
fileCheckFrequency: 1s
syncFrequency: 5s
podLogsDir: %s
address: 127.0.0.1
port: %s
readOnlyPort: %s
healthzBindAddress: 127.0.0.1
healthzPort: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
serializeImagePulls: false
resolvConf: ""
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 20
`, n.manifests, n.podLogs, portOf(port), portOf(n.roPort), portOf(healthz), cgroupRoot, n.crid.Socket, n.crid.Socket)
		os.WriteFile(cfgPath, []byte(cfg), 0o644)
		os.WriteFile(filepath.Join(n.dir, "healthz"), []byte(healthz), 0o644)
	}
	healthz, _ := os.ReadFile(filepath.Join(n.dir, "healthz"))
	log, err := os.OpenFile(filepath.Join(n.dir, "kubelet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n.kubelet = exec.Command(kubeletBin, "--config", cfgPath, "--root-dir", filepath.Join(n.dir, "kubelet"),
		"--cert-dir", filepath.Join(n.dir, "kubelet-pki"), "--hostname-override", "crid-e2e", "--node-ip", "127.0.0.1", "--v", "2")
	n.kubelet.Stdout, n.kubelet.Stderr = log, log
	if err := n.kubelet.Start(); err != nil {
		t.Fatal(err)
	}
	n.kubeDone = make(chan error, 1)
	go func() { n.kubeDone <- n.kubelet.Wait(); log.Close() }()
	cmd := n.kubelet
	t.Cleanup(func() { n.stopKubelet(cmd) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get("http://" + string(healthz) + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-n.kubeDone:
			n.kubeDone <- err
			t.Fatalf("the kubelet exited at start: %v\n%s", err, n.kubeletLog(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kubelet was not healthy in 60 s\n%s", n.kubeletLog(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopKubelet ends the kubelet it is given (by PID) and waits for it.
func (n *node) stopKubelet(cmd *exec.Cmd) {
	if cmd != n.kubelet || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.kubeDone:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-n.kubeDone
	}
	n.kubelet = nil
}

func (n *node) kubeletLog(lines int) string {
	data, _ := os.ReadFile(filepath.Join(n.dir, "kubelet.log"))
	all := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// The parts of a v1.Pod the checks read, from the kubelet's /pods.
type pod struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Status struct {
		Phase             string            `json:"phase"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	RestartCount int            `json:"restartCount"`
	ContainerID  string         `json:"containerID"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
	Terminated *struct {
		Reason   string `json:"reason"`
		Message  string `json:"message"`
		ExitCode int    `json:"exitCode"`
	} `json:"terminated"`
}

// pods are the kubelet's pods as its read-only endpoint reports them.
func (n *node) pods() map[string]pod {
	out := map[string]pod{}
	resp, err := http.Get("http://" + n.roPort + "/pods")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var list struct {
		Items []pod `json:"items"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	for _, p := range list.Items {
		// Static pods are named <name>-<node>.
		out[strings.TrimSuffix(p.Metadata.Name, "-crid-e2e")] = p
	}
	return out
}

// waitFor polls the kubelet until cond holds for the named pod, or the
// timeout passes; it answers with the pod and how long it took.
func (n *node) waitFor(name string, timeout time.Duration, cond func(pod) bool) (pod, time.Duration, bool) {
	start := time.Now()
	for {
		p, ok := n.pods()[name]
		if ok && cond(p) {
			return p, time.Since(start), true
		}
		if time.Since(start) > timeout {
			return p, time.Since(start), false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func running(p pod) bool {
	if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

// manifest writes a static pod; remove deletes it. Pods get 2 s to end
// unless they say otherwise: a shell as PID 1 ignores SIGTERM, and the
// kubelet's default 30 s would slow every removal.
func (n *node) manifest(name, spec string) {
	n.t.Helper()
	if !strings.Contains(spec, "terminationGracePeriodSeconds") {
		spec = "  terminationGracePeriodSeconds: 2\n" + spec
	}
	text := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: e2e\nspec:\n%s", name, spec)
	if err := os.WriteFile(filepath.Join(n.manifests, name+".yaml"), []byte(text), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) remove(name string) { os.Remove(filepath.Join(n.manifests, name+".yaml")) }

// summaryMemory is a container's memory usage and working set as the
// kubelet's summary API (/stats/summary, which its eviction manager
// reads too) gives them.
func (n *node) summaryMemory(podName, ctrName string) (usage, workingSet uint64, err error) {
	resp, err := http.Get("http://" + n.roPort + "/stats/summary")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("/stats/summary: %s: %.200s", resp.Status, body)
	}
	var summary struct {
		Pods []struct {
			PodRef     struct{ Name string }
			Containers []struct {
				Name   string
				Memory struct{ UsageBytes, WorkingSetBytes uint64 }
			}
		}
	}
	if err := json.Unmarshal(body, &summary); err != nil {
		return 0, 0, err
	}
	for _, p := range summary.Pods {
		if !strings.HasPrefix(p.PodRef.Name, podName) {
			continue
		}
		for _, c := range p.Containers {
			if c.Name == ctrName {
				return c.Memory.UsageBytes, c.Memory.WorkingSetBytes, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("/stats/summary has no container %s of pod %s", ctrName, podName)
}

// resourceWorkingSet is a container's working set as the kubelet's
// resource metrics (/metrics/resource, what metrics-server and `kubectl
// top` read; on its read-only port) give it, from crid's container stats.
func (n *node) resourceWorkingSet(ctrName string) (uint64, bool) {
	resp, err := http.Get("http://" + n.roPort + "/metrics/resource")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	prefix := `container_memory_working_set_bytes{container="` + ctrName + `",`
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		// name{labels} value timestamp
		f := strings.Fields(line[strings.LastIndex(line, "}")+1:])
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return uint64(v), err == nil
	}
	return 0, false
}

// cgroupMemory is a running container's memory usage and inactive page
// cache, read from its cgroup (v1 or v2) as the kernel keeps them.
func (n *node) cgroupMemory(ctrName string) (usage, inactiveFile uint64, err error) {
	resp, err := n.rt.ListContainers(context.Background(), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
		State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return 0, 0, err
	}
	for _, c := range resp.Containers {
		if c.Metadata.Name != ctrName {
			continue
		}
		st, err := n.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: c.Id, Verbose: true})
		if err != nil {
			return 0, 0, err
		}
		var info struct{ Cgroup string }
		json.Unmarshal([]byte(st.Info["info"]), &info)
		usageFile, statKey := "memory.usage_in_bytes", "total_inactive_file"
		dir := filepath.Join("/sys/fs/cgroup/memory", info.Cgroup)
		if _, err := os.Stat(dir); err != nil {
			dir, usageFile, statKey = filepath.Join("/sys/fs/cgroup", info.Cgroup), "memory.current", "inactive_file"
		}
		raw, err := os.ReadFile(filepath.Join(dir, usageFile))
		if err != nil {
			return 0, 0, err
		}
		usage, _ = strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return 0, 0, err
		}
		for _, line := range strings.Split(string(stat), "\n") {
			if v, ok := strings.CutPrefix(line, statKey+" "); ok {
				inactiveFile, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		return usage, inactiveFile, nil
	}
	return 0, 0, fmt.Errorf("no running container %s", ctrName)
}

// sandboxes are crid's ready pods by the kubelet's pod name.
func (n *node) sandboxes() map[string]*runtime.PodSandbox {
	out := map[string]*runtime.PodSandbox{}
	for _, s := range n.allSandboxes() {
		if s.State == runtime.PodSandboxState_SANDBOX_READY {
			out[strings.TrimSuffix(s.Metadata.Name, "-crid-e2e")] = s
		}
	}
	return out
}

// allSandboxes are crid's pods, stopped ones too.
func (n *node) allSandboxes() []*runtime.PodSandbox {
	resp, err := n.rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{})
	if err != nil {
		return nil
	}
	return resp.Items
}

// settle waits until crid runs the pods of the manifests there are and no
// other: what earlier checks removed has gone.
func (n *node) settle() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(n.manifests)
		ready := n.sandboxes()
		if len(ready) == len(entries) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// containers are crid's running containers: ID -> PID.
func (n *node) containers() map[string]int64 {
	out := map[string]int64{}
	resp, err := n.rt.ListContainers(context.Background(), &runtime.ListContainersRequest{})
	if err != nil {
		return out
	}
	for _, c := range resp.Containers {
		if c.State != runtime.ContainerState_CONTAINER_RUNNING {
			continue
		}
		st, err := n.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: c.Id, Verbose: true})
		if err != nil {
			continue
		}
		var info struct {
			Pid int64 `json:"pid"`
		}
		json.Unmarshal([]byte(st.Info["info"]), &info)
		out[c.Id] = info.Pid
	}
	return out
}

// container is the spec of one container of the busybox image.
func (n *node) container(name, script string, extra string) string {
	return fmt.Sprintf("  - name: %s\n    image: %s\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, %q]\n%s", name, n.image, script, extra)
}

// check is one thing a kubelet's user relies on.
type check struct {
	name string
	run  func(n *node) (ok bool, detail string)
}

func TestStandaloneKubelet(t *testing.T) {
	n := newNode(t)
	var report []string
	for _, c := range checks() {
		ok := t.Run(c.name, func(t *testing.T) {
			n.t = t
			pass, detail := c.run(n)
			verdict := "PASS"
			if !pass {
				verdict = "FAIL"
				t.Errorf("%s\nkubelet log:\n%s", detail, n.kubeletLog(30))
			}
			report = append(report, fmt.Sprintf("%s %s: %s", verdict, c.name, detail))
		})
		if !ok {
			// Later checks build on what earlier ones left running.
			continue
		}
	}
	fmt.Println(strings.Join(report, "\n"))
}

// removeTree removes a cgroup directory tree, deepest first (cgroupfs
// removes a directory only when it has no children).
func removeTree(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}
