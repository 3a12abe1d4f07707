package kubelet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/crid-dev/crid/test/harness"
)

// The checks, in order: later ones (restarts of crid and the kubelet)
// look at the pods the earlier ones left running.
func checks() []check {
	return []check{
		{"a single-container pod runs, its logs readable", singlePod},
		{"two containers talk over localhost", twoContainers},
		{"a crash-looping container restarts with back-off", crashLoop},
		{"exec liveness and readiness probes act as written", probes},
		{"a memory-limited container is OOMKilled and restarted", oomKilled},
		{"the kubelet's working set leaves out inactive page cache", workingSet},
		{"a shared-PID pod with a wrapper-script image stops and goes", wrapperScript},
		{"kill -9 of crid leaves its pods as they were", killCrid},
		{"a kubelet restart re-adopts its pods", restartKubelet},
		{"removing every manifest leaves nothing behind", removeAll},
	}
}

func singlePod(n *node) (bool, string) {
	start := time.Now()
	n.manifest("hello", "  containers:\n"+n.container("hello", "echo hello from crid; sleep 3600", ""))
	var sandboxAt time.Duration
	for sandboxAt == 0 && time.Since(start) < 60*time.Second {
		if _, ok := n.sandboxes()["hello"]; ok {
			sandboxAt = time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _, ok := n.waitFor("hello", 60*time.Second, running)
	runningAt := time.Since(start)
	if !ok {
		return false, "not Running after 60 s"
	}
	// The kubelet's own layout: <podLogsDir>/<ns>_<name>_<uid>/<container>/0.log.
	logs, _ := filepath.Glob(filepath.Join(n.podLogs, "e2e_hello-crid-e2e_*", "hello", "*.log"))
	if len(logs) == 0 {
		return false, "no log file under " + n.podLogs
	}
	data, _ := os.ReadFile(logs[0])
	if !regexp.MustCompile(`(?m)^\S+ stdout F hello from crid$`).Match(data) {
		return false, fmt.Sprintf("log %s holds %q, not a CRI log line", logs[0], data)
	}
	return true, fmt.Sprintf("manifest -> sandbox %v, -> running %v; log line %q", sandboxAt.Round(time.Millisecond), runningAt.Round(time.Millisecond), strings.TrimSpace(string(data)))
}

func twoContainers(n *node) (bool, string) {
	server := n.container("server", "mkdir -p /www && echo pong > /www/ping && exec httpd -f -p 8080 -h /www", "")
	client := n.container("client", "until wget -qO- http://127.0.0.1:8080/ping; do sleep 0.2; done; sleep 3600", "")
	n.manifest("pair", "  containers:\n"+server+client)
	if _, took, ok := n.waitFor("pair", 60*time.Second, running); !ok {
		return false, fmt.Sprintf("not Running after %v", took)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		logs, _ := filepath.Glob(filepath.Join(n.podLogs, "e2e_pair-crid-e2e_*", "client", "*.log"))
		if len(logs) > 0 {
			if data, _ := os.ReadFile(logs[0]); strings.Contains(string(data), "stdout F pong") {
				return true, "the client read the server's reply over 127.0.0.1:8080"
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false, "the client never read the server's reply"
}

func crashLoop(n *node) (bool, string) {
	n.manifest("crasher", "  containers:\n"+n.container("crasher", "echo crash; exit 1", ""))
	sawBackOff := false
	p, took, ok := n.waitFor("crasher", 90*time.Second, func(p pod) bool {
		if len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		c := p.Status.ContainerStatuses[0]
		if c.State.Waiting != nil && c.State.Waiting.Reason == "CrashLoopBackOff" {
			sawBackOff = true
		}
		return c.RestartCount >= 2 && sawBackOff
	})
	n.remove("crasher")
	if !ok {
		return false, fmt.Sprintf("after %v: %+v", took, p.Status.ContainerStatuses)
	}
	return true, fmt.Sprintf("restarted %d times, CrashLoopBackOff between, in %v", p.Status.ContainerStatuses[0].RestartCount, took.Round(time.Second))
}

func probes(n *node) (bool, string) {
	// Ready once /tmp/ready exists (after 3 s); alive while /tmp/alive
	// does (removed after 6 s, so the kubelet restarts it).
	extra := `    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      exec: {command: [test, -f, /tmp/alive]}
      periodSeconds: 1
      failureThreshold: 2
`
	n.manifest("probed", "  containers:\n"+n.container("probed", "touch /tmp/alive; sleep 3; touch /tmp/ready; sleep 3; rm /tmp/alive; sleep 3600", extra))
	start := time.Now()
	_, readyAt, ok := n.waitFor("probed", 60*time.Second, func(p pod) bool {
		return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready
	})
	if !ok {
		return false, "never Ready"
	}
	p, _, ok := n.waitFor("probed", 60*time.Second, func(p pod) bool {
		return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	n.remove("probed")
	if !ok {
		return false, fmt.Sprintf("the liveness probe never restarted it: %+v", p.Status.ContainerStatuses)
	}
	if readyAt < 2*time.Second {
		return false, fmt.Sprintf("Ready after %v, before its readiness file existed", readyAt)
	}
	return true, fmt.Sprintf("Ready after %v (file made at 3 s); restarted by liveness after %v", readyAt.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}

// workingSet: the kubelet evicts by the working set, and `kubectl top`
// shows it: usage less inactive file pages, which it takes from crid's
// container stats. A container that wrote 32 MiB to a file and reads it
// no more holds it as inactive page cache: in its cgroup's usage, not in
// the working set the kubelet serves, on its summary API (which its
// eviction manager reads) and its resource metrics (/metrics/resource,
// which metrics-server scrapes).
func workingSet(n *node) (bool, string) {
	n.manifest("cache", "  containers:\n"+n.container("cache", "dd if=/dev/zero of=/cachefile bs=1M count=32 2>/dev/null; sleep 3600", ""))
	defer n.remove("cache")
	if _, _, ok := n.waitFor("cache", 60*time.Second, running); !ok {
		return false, "not Running after 60 s"
	}
	const mi = 1 << 20
	var ws, sumUsage, sumWS, usage, inactive uint64
	var errs []error
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ok bool
		var sumErr, cgErr error
		ws, ok = n.resourceWorkingSet("cache")
		sumUsage, sumWS, sumErr = n.summaryMemory("cache", "cache")
		usage, inactive, cgErr = n.cgroupMemory("cache")
		errs = []error{sumErr, cgErr}
		if ok && sumErr == nil && cgErr == nil && inactive >= 30*mi && sumUsage >= 32*mi {
			break
		}
		if time.Now().After(deadline) {
			return false, fmt.Sprintf("after 60 s: /metrics/resource working set %d (served %v); summary usage %d, working set %d; cgroup usage %d, inactive file %d; %v",
				ws, ok, sumUsage, sumWS, usage, inactive, errors.Join(errs...))
		}
		time.Sleep(time.Second)
	}
	want := usage - inactive
	near := func(a, b uint64) bool { return max(a, b)-min(a, b) <= 2*mi }
	detail := fmt.Sprintf("cgroup usage %.1f MiB less inactive file %.1f MiB = %.1f MiB; working set %.1f MiB (/metrics/resource), %.1f MiB of usage %.1f MiB (/stats/summary)",
		float64(usage)/mi, float64(inactive)/mi, float64(want)/mi, float64(ws)/mi, float64(sumWS)/mi, float64(sumUsage)/mi)
	if !near(ws, want) || !near(sumWS, want) || !near(sumUsage, usage) || usage-ws < 24*mi {
		return false, detail + ": the working set does not leave out the inactive page cache"
	}
	return true, detail
}

func oomKilled(n *node) (bool, string) {
	extra := "    resources:\n      limits: {memory: 32Mi}\n"
	// tail -n 1 holds a whole line in memory: 256 MB of zeros without a
	// newline. The shell exits as tail does.
	n.manifest("oom", "  containers:\n"+n.container("oom", "head -c 268435456 /dev/zero | tail -n 1 >/dev/null", extra))
	p, took, ok := n.waitFor("oom", 90*time.Second, func(p pod) bool {
		if len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		c := p.Status.ContainerStatuses[0]
		return c.RestartCount >= 1 && c.LastState.Terminated != nil && c.LastState.Terminated.Reason == "OOMKilled"
	})
	n.remove("oom")
	if !ok {
		return false, fmt.Sprintf("after %v: %+v", took, p.Status.ContainerStatuses)
	}
	// The kubelet shows crid's status message as the terminated state's:
	// what filled the limit, read at the kill. The kubelet gives the pod's
	// cgroup the container's limit too, which the pod (its infra process
	// beside the container) reaches first.
	last := p.Status.ContainerStatuses[0].LastState.Terminated
	if !regexp.MustCompile(`^OOMKilled: limit 32Mi(, reached at the pod's limit \(32Mi, /\S+\); the pod held|;) anon [0-9.]+Mi, page cache .*; process tail \(pid \d+\) killed$`).MatchString(last.Message) {
		return false, fmt.Sprintf("the kubelet's terminated state says %q: no breakdown of the kill", last.Message)
	}
	return true, fmt.Sprintf("OOMKilled (exit %d) and restarted, in %v; the kubelet's lastState.terminated.message: %q", last.ExitCode, took.Round(time.Second), last.Message)
}

func wrapperScript(n *node) (bool, string) {
	script := `trap '' TERM; (trap '' TERM; sh -c "trap '' TERM; sleep 3600" & sleep 3600) & sleep 3600 & wait`
	n.manifest("wrapper", "  shareProcessNamespace: true\n  terminationGracePeriodSeconds: 2\n  containers:\n"+n.container("wrapper", script, ""))
	if _, _, ok := n.waitFor("wrapper", 60*time.Second, running); !ok {
		return false, "never Running"
	}
	time.Sleep(time.Second)
	n.remove("wrapper")
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		if _, ok := n.sandboxes()["wrapper"]; !ok {
			if _, listed := n.pods()["wrapper"]; !listed {
				return true, fmt.Sprintf("gone from crid and the kubelet %v after its manifest (grace period 2 s)", time.Since(start).Round(100*time.Millisecond))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false, "still there 60 s after its manifest went"
}

func killCrid(n *node) (bool, string) {
	n.settle()
	before := n.containers()
	if len(before) == 0 {
		return false, "no running containers to compare"
	}
	n.crid.Stop(n.t, syscall.SIGKILL)
	n.startCrid()
	// The kubelet relists every second; give it a few.
	time.Sleep(10 * time.Second)
	after := n.containers()
	for id, pid := range before {
		if after[id] != pid {
			return false, fmt.Sprintf("container %s was PID %d, now %d (running: %v)", id[:12], pid, after[id], after)
		}
	}
	if len(after) != len(before) {
		return false, fmt.Sprintf("%d containers before, %d after: the kubelet recreated some", len(before), len(after))
	}
	return true, fmt.Sprintf("%d containers, same IDs and PIDs 10 s after crid came back", len(after))
}

func restartKubelet(n *node) (bool, string) {
	n.settle()
	before := n.containers()
	sandboxes := n.sandboxes()
	n.stopKubelet(n.kubelet)
	n.startKubelet()
	time.Sleep(15 * time.Second)
	after := n.containers()
	for id, pid := range before {
		if after[id] != pid {
			return false, fmt.Sprintf("container %s was PID %d, now %d", id[:12], pid, after[id])
		}
	}
	for name, sb := range n.sandboxes() {
		if old, ok := sandboxes[name]; ok && old.Id != sb.Id {
			return false, fmt.Sprintf("pod %s got a new sandbox", name)
		}
	}
	if _, _, ok := n.waitFor("hello", 30*time.Second, running); !ok {
		return false, "the kubelet does not report hello Running after its restart"
	}
	return true, fmt.Sprintf("%d containers and %d pods kept, none recreated", len(after), len(sandboxes))
}

func removeAll(n *node) (bool, string) {
	entries, _ := os.ReadDir(n.manifests)
	for _, e := range entries {
		os.Remove(filepath.Join(n.manifests, e.Name()))
	}
	start := time.Now()
	for len(n.sandboxes()) > 0 && time.Since(start) < 90*time.Second {
		time.Sleep(250 * time.Millisecond)
	}
	if left := n.sandboxes(); len(left) > 0 {
		return false, fmt.Sprintf("%d pods still ready 90 s after their manifests went", len(left))
	}
	stopped := time.Since(start)
	// The kubelet's garbage collection (each minute) removes the stopped
	// sandboxes of pods that are gone.
	for len(n.allSandboxes()) > 0 && time.Since(start) < 150*time.Second {
		time.Sleep(500 * time.Millisecond)
	}
	if left := n.allSandboxes(); len(left) > 0 {
		return false, fmt.Sprintf("%d stopped pods not removed 150 s after their manifests went", len(left))
	}
	removed := time.Since(start)
	var left []string
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], n.dir+"/") && strings.Contains(f[4], "/run/") {
			left = append(left, "mount "+f[4])
		}
	}
	if out, err := execOut("ip", "-o", "link", "show", "master", "critest51"); err == nil && strings.TrimSpace(out) != "" {
		left = append(left, "veths: "+strings.TrimSpace(out))
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/memory" + cgroupRoot + "/kubepods/*/pod*/*")
	cg2, _ := filepath.Glob("/sys/fs/cgroup/memory" + cgroupRoot + "/kubepods/pod*/*")
	for _, c := range append(cg, cg2...) {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			left = append(left, "cgroup "+c)
		}
	}
	leases, _ := filepath.Glob(filepath.Join(n.dir, "ipam", "*", "10.*"))
	for _, l := range leases {
		left = append(left, "lease "+l)
	}
	for _, pid := range harness.Monitors(n.dir) {
		left = append(left, fmt.Sprintf("monitor PID %d", pid))
	}
	if len(left) > 0 {
		return false, "left behind: " + strings.Join(left, "; ")
	}
	return true, fmt.Sprintf("every pod stopped %v and was removed %v after its manifest went; no mount, veth, container cgroup, lease or monitor left", stopped.Round(100*time.Millisecond), removed.Round(time.Second))
}

func execOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
