package cgroupstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/oci/generate"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/reexec"
)

func flagLookup(name string) *flag.Flag { return flag.Lookup(name) }

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root")
	}
}

// newCgroup makes a manager for a fresh cgroup and removes it at the end.
func newCgroup(t *testing.T, r *cgroups.Resources) (cgroups.Manager, *cgroups.Hierarchy) {
	t.Helper()
	return newCgroupAt(t, "", r)
}

// newCgroupAt is newCgroup at a path under the test's own cgroup (a child
// of one newCgroup made, say).
func newCgroupAt(t *testing.T, sub string, r *cgroups.Resources) (cgroups.Manager, *cgroups.Hierarchy) {
	t.Helper()
	requireRoot(t)
	h, err := cgroups.Discover()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host: %s", h)
	m, err := h.Manager(filepath.Join(fmt.Sprintf("/crid-test-%d/%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")), sub))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Destroy(ctx); err != nil {
			t.Errorf("destroy: %v", err)
		}
		parent, _ := h.Manager(fmt.Sprintf("/crid-test-%d", os.Getpid()))
		parent.Destroy(ctx)
	})
	return m, h
}

type workload struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	done   chan error
}

// start runs a helper workload and moves it into m before it does anything.
func start(t *testing.T, m cgroups.Manager, kind string, env ...string) *workload {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), helperEnv+"="+kind), env...)
	stdin, _ := cmd.StdinPipe()
	// A pipe of our own, not StdoutPipe: Wait would close that one under a
	// reader still waiting for a line.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { pr.Close() })
	w := &workload{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(pr), done: make(chan error, 1)}
	t.Cleanup(func() { cmd.Process.Kill(); <-w.done })
	if err := m.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- cmd.Wait() }()
	stdin.Write([]byte("go\n"))
	return w
}

func (w *workload) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("workload still running after %v", timeout)
		return nil
	}
}

func TestMemoryLimitOOMKillIsDetected(t *testing.T) {
	m, _ := newCgroup(t, &cgroups.Resources{MemoryLimit: 32 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := m.WatchOOM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := start(t, m, "alloc", "MIB=256")
	err = w.wait(t, 60*time.Second)
	ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the workload ended with %v, not killed by SIGKILL", err)
	}
	kills, err := m.OOMKills()
	if err != nil || kills < 1 {
		t.Fatalf("OOM kills %d, %v", kills, err)
	}
	select {
	case ev := <-events:
		t.Logf("OOM event: kills=%d usage=%d anon=%d file=%d kernel=%d limit=%d",
			ev.Kills, ev.Memory.Usage, ev.Memory.RSS, ev.Memory.Cache, ev.Memory.Kernel, ev.Memory.Limit)
		if ev.Kills < 1 || ev.Memory.Limit != 32<<20 {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OOM event was reported")
	}
}

// crid-podmon tells whether an exit needs the Go exit helper from two
// kinds of file the start helper names: the cgroup's member lists
// (JoinFiles) and its OOM counter (OOMKillsFile). What it reads of them,
// on this kernel's cgroup version: a running member listed, none once it
// is reaped, and an "oom_kill N" line that says what OOMKills says.
func TestExitFilesTellMembersAndOOMKills(t *testing.T) {
	m, _ := newCgroup(t, &cgroups.Resources{MemoryLimit: 32 << 20})
	listed := func() bool {
		t.Helper()
		for _, f := range m.JoinFiles() {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) > 0 {
				return true
			}
		}
		return false
	}
	oomKillLine := func() uint64 {
		t.Helper()
		data, err := os.ReadFile(m.OOMKillsFile())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					t.Fatalf("%s: %q", m.OOMKillsFile(), l)
				}
				return n
			}
		}
		t.Fatalf("%s has no oom_kill line:\n%s", m.OOMKillsFile(), data)
		return 0
	}
	if listed() {
		t.Fatal("an empty cgroup lists members")
	}
	sleeper := start(t, m, "sleep")
	if !listed() {
		t.Error("a running member is not listed")
	}
	sleeper.cmd.Process.Kill()
	sleeper.wait(t, 10*time.Second)
	if listed() {
		t.Error("a reaped member is still listed")
	}
	if n := oomKillLine(); n != 0 {
		t.Errorf("oom_kill %d before any kill", n)
	}
	start(t, m, "alloc", "MIB=256").wait(t, 60*time.Second)
	kills, err := m.OOMKills()
	if n := oomKillLine(); err != nil || n < 1 || n != kills {
		t.Errorf("oom_kill line %d, OOMKills %d (%v): want the same, at least 1", n, kills, err)
	}
	if listed() {
		t.Error("the OOM-killed member is still listed once reaped")
	}
}

// TestOOMReportSaysWhatFilledTheLimit: the report crid's monitor makes of
// an OOM kill, on this kernel's cgroup version: read at the kernel's
// notification, with the tmpfs page cache the workload wrote beside its
// anon memory, and the victim from the kernel's log. With the limit on a
// parent (a pod's cgroup) and none on the container's, the victim's
// record names the parent and the message says it was the pod's.
func TestOOMReportSaysWhatFilledTheLimit(t *testing.T) {
	const mi = 1 << 20
	for _, podLimit := range []bool{false, true} {
		t.Run(map[bool]string{false: "container limit", true: "pod limit"}[podLimit], func(t *testing.T) {
			var m, limited cgroups.Manager
			if podLimit {
				limited, _ = newCgroup(t, &cgroups.Resources{MemoryLimit: 48 * mi})
				m, _ = newCgroupAt(t, "ctr", &cgroups.Resources{})
			} else {
				m, _ = newCgroup(t, &cgroups.Resources{MemoryLimit: 48 * mi})
				limited = m
			}
			watch := monitor.WatchOOM(m)
			if watch == nil {
				t.Fatal("no OOM watch on this kernel")
			}
			defer watch.Close()
			// tmpfs, of the test's own: its pages stay charged until the
			// kill, where a disk file's clean pages would be reclaimed.
			shm := t.TempDir()
			if err := unix.Mount("tmpfs", shm, "tmpfs", 0, "size=64m"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Unmount(shm, unix.MNT_DETACH) })
			w := start(t, m, "alloc", "MIB=256", "FILL=16", "FILE="+filepath.Join(shm, "fill"))
			w.wait(t, 60*time.Second)
			if ws, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("the workload ended %v, not killed", w.cmd.ProcessState)
			}
			r := watch.Report(m, 5*time.Second)
			msg := container.OOMMessage(r, m.Path(), 0)
			t.Logf("%s\nreport %+v victim %+v", msg, *r, r.Victim)
			if !r.AtKill {
				t.Error("the breakdown was not read at the kill")
			}
			if s := float64(r.Shmem) / mi; s < 14 || s > 18 {
				t.Errorf("tmpfs %.1f MiB, want the 16 written", s)
			}
			if used := float64(r.Anon+r.File) / mi; used < 40 || used > 48 {
				t.Errorf("anon + page cache %.1f MiB, want them to fill the 48 MiB limit", used)
			}
			v := r.Victim
			if v == nil || v.Pid != w.cmd.Process.Pid || v.LimitCgroup != limited.Path() {
				t.Fatalf("victim %+v, want pid %d killed by the limit of %s", v, w.cmd.Process.Pid, limited.Path())
			}
			want := "OOMKilled: limit 48Mi; anon "
			if podLimit {
				want = "OOMKilled: the memory limit of " + limited.Path() + " (48Mi, the pod's, not the container's) ran out; the pod held anon "
			}
			if !strings.HasPrefix(msg, want) || !strings.Contains(msg, fmt.Sprintf("(pid %d) killed", v.Pid)) {
				t.Errorf("message %q, want it to begin %q and name pid %d", msg, want, v.Pid)
			}
		})
	}
}

func TestCPUQuotaThrottles(t *testing.T) {
	m, _ := newCgroup(t, &cgroups.Resources{CPUQuota: 10000, CPUPeriod: 100000})
	start := time.Now()
	w := start_(t, m, "spin", "SPIN=800ms")
	if err := w.wait(t, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cpu: usage %v, periods %d, throttled %d for %v, wall %v",
		time.Duration(s.CPU.UsageNanos), s.CPU.Periods, s.CPU.Throttled, time.Duration(s.CPU.ThrottledNanos), wall)
	if s.CPU.Throttled == 0 || s.CPU.ThrottledNanos == 0 || s.CPU.Periods == 0 {
		t.Errorf("a 10%% quota did not throttle a spinning process: %+v", s.CPU)
	}
	if s.CPU.UsageNanos == 0 || s.CPU.UsageNanos > uint64(wall)/2 {
		t.Errorf("cpu usage %v over %v of wall time with a 10%% quota", time.Duration(s.CPU.UsageNanos), wall)
	}
}

// start_ keeps TestCPUQuotaThrottles readable where a local is named start.
var start_ = start

func TestPidsLimitStopsForks(t *testing.T) {
	m, _ := newCgroup(t, &cgroups.Resources{PidsLimit: 24})
	w := start(t, m, "forks", "FORKS=40")
	line, err := w.stdout.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var started, failed int
	fmt.Sscanf(line, "started %d failed %d", &started, &failed)
	t.Logf("pids.max 24: %s", strings.TrimSpace(line))
	if failed == 0 || started >= 40 {
		t.Errorf("pids.max did not stop forks: %s", line)
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pids.Limit != 24 || s.Pids.Current > 24 {
		t.Errorf("pids stats %+v", s.Pids)
	}
	w.wait(t, 30*time.Second)
}

func TestStatsAndInPlaceUpdate(t *testing.T) {
	m, h := newCgroup(t, &cgroups.Resources{MemoryLimit: 128 << 20, CPUShares: 512, PidsLimit: 100})
	w := start(t, m, "alloc", "MIB=24")
	if line, _ := w.stdout.ReadString('\n'); strings.TrimSpace(line) != "allocated" {
		t.Fatalf("workload said %q", line)
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", s)
	if s.Memory.Usage < 24<<20 || s.Memory.RSS < 20<<20 || s.Memory.WorkingSet == 0 || s.Memory.WorkingSet > s.Memory.Usage {
		t.Errorf("memory stats for 24 MiB touched: %+v", s.Memory)
	}
	if s.Memory.Limit != 128<<20 || s.Memory.PageFaults == 0 {
		t.Errorf("memory limit %d, faults %d", s.Memory.Limit, s.Memory.PageFaults)
	}
	if s.CPU.UsageNanos == 0 || s.Pids.Current == 0 || s.Pids.Limit != 100 {
		t.Errorf("cpu %+v pids %+v", s.CPU, s.Pids)
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 1 || pids[0] != w.cmd.Process.Pid {
		t.Errorf("Pids() = %v, %v; want [%d]", pids, err, w.cmd.Process.Pid)
	}

	// Resize in place while it runs.
	if err := m.Update(&cgroups.Resources{MemoryLimit: 256 << 20, CPUShares: 2048, PidsLimit: 50}); err != nil {
		t.Fatal(err)
	}
	s, _ = m.Stats()
	if s.Memory.Limit != 256<<20 || s.Pids.Limit != 50 {
		t.Errorf("after update: memory limit %d, pids limit %d", s.Memory.Limit, s.Pids.Limit)
	}
	var file, want string
	if h.Mode == cgroups.Unified {
		file, want = filepath.Join(h.Unified, m.Path(), "cpu.weight"), "79"
	} else {
		file, want = filepath.Join(h.V1["cpu"], m.Path(), "cpu.shares"), "2048"
	}
	if data, _ := os.ReadFile(file); strings.TrimSpace(string(data)) != want {
		t.Errorf("%s = %q, want %s", file, data, want)
	}
	// Shrinking below what it uses is the kernel's to refuse or reclaim;
	// growing swap-less memory back must work in either order.
	if err := m.Update(&cgroups.Resources{MemoryLimit: 64 << 20}); err != nil {
		t.Fatal(err)
	}
}

func TestDestroyKillsNestedProcessesAndRemovesEveryDir(t *testing.T) {
	requireRoot(t)
	h, err := cgroups.Discover()
	if err != nil {
		t.Fatal(err)
	}
	podPath := fmt.Sprintf("/crid-test-%d/pod-destroy", os.Getpid())
	pod, _ := h.Manager(podPath)
	if err := pod.Create(&cgroups.Resources{}); err != nil {
		t.Fatal(err)
	}
	ctrPath, _ := cgroups.Join(podPath, "ctr")
	ctr, _ := h.Manager(ctrPath)
	if err := ctr.Create(&cgroups.Resources{MemoryLimit: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	w := start(t, ctr, "sleep")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pod.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	w.wait(t, 10*time.Second)
	var dirs []string
	if h.Mode == cgroups.Unified {
		dirs = []string{filepath.Join(h.Unified, podPath)}
	} else {
		for _, mp := range h.V1 {
			dirs = append(dirs, filepath.Join(mp, podPath))
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s is left: %v", d, err)
		}
	}
	if err := pod.Destroy(ctx); err != nil {
		t.Errorf("destroying a removed cgroup: %v", err)
	}
	parent, _ := h.Manager(fmt.Sprintf("/crid-test-%d", os.Getpid()))
	parent.Destroy(ctx)
}

func TestOOMScoreAdjIsClampedWithoutCapSysResource(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), helperEnv+"=sleep")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	own, _ := os.ReadFile("/proc/self/oom_score_adj")
	ownScore, _ := strconv.Atoi(strings.TrimSpace(string(own)))
	status, _ := os.ReadFile("/proc/self/status")
	hasCap := false
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			hasCap = caps&(1<<24) != 0
		}
	}
	// What CreateContainer clamps, the executor writes for the init.
	set := func(pid, v int) (int, error) {
		v, err := cgroups.ClampOOMScoreAdj(v)
		if err != nil {
			return 0, err
		}
		return v, os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(v)), 0)
	}
	for _, want := range []int{500, -500, 1000} {
		got, err := set(cmd.Process.Pid, want)
		if err != nil {
			t.Fatalf("set %d: %v", want, err)
		}
		expect := want
		if !hasCap && want < ownScore {
			expect = ownScore
		}
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", cmd.Process.Pid))
		if got != expect || strings.TrimSpace(string(data)) != strconv.Itoa(expect) {
			t.Errorf("set %d (CAP_SYS_RESOURCE %v, own %d): got %d, file %q; want %d", want, hasCap, ownScore, got, data, expect)
		}
	}
	if _, err := set(cmd.Process.Pid, 1001); err == nil {
		t.Error("1001 accepted")
	}
}

// TestCloneIntoBirthsAChildInTheCgroup: on cgroup v2 a child cloned with
// CLONE_INTO_CGROUP through CloneInto is in the cgroup from its first
// instruction (no move, which costs the kernel a synchronize_rcu); on v1
// CloneInto says it cannot, and the caller moves the child instead.
func TestCloneIntoBirthsAChildInTheCgroup(t *testing.T) {
	m, h := newCgroup(t, &cgroups.Resources{})
	dir, err := m.CloneInto()
	if h.Mode != cgroups.Unified {
		if !errors.Is(err, cgroups.ErrNoCloneInto) {
			t.Fatalf("CloneInto on %s: %v, want ErrNoCloneInto", h, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=sleep")
	stdin, _ := cmd.StdinPipe() // the helper waits for a line before it works
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != "0::"+m.Path() {
		t.Errorf("the child is in %q, want 0::%s", got, m.Path())
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Errorf("cgroup holds %v (%v), want the child %d", pids, err, cmd.Process.Pid)
	}
	stdin.Close()
}

// A process in a cgroup with device rules opens only the devices they
// allow: v1's devices controller here, a BPF program on cgroup v2.
func TestDeviceRulesAreEnforced(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	null, full := filepath.Join(dir, "null"), filepath.Join(dir, "full")
	for _, d := range []struct {
		path  string
		minor uint32
	}{{null, 3}, {full, 7}} {
		if err := unix.Mknod(d.path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, d.minor))); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := newCgroup(t, &cgroups.Resources{Devices: []cgroups.DeviceRule{
		{Type: 'a', Major: -1, Minor: -1, Access: "rwm"},
		{Allow: true, Type: 'c', Major: 1, Minor: 3, Access: "rwm"},
	}})
	w := start(t, m, "open", "OPEN="+null+":"+full)
	var got []string
	for range 2 {
		line, err := w.stdout.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.TrimSpace(line))
	}
	if got[0] != "null ok" || got[1] != "full operation not permitted" {
		t.Errorf("opens in the cgroup: %q, want null ok and full refused", got)
	}
}

// pageSizes are the host's huge page sizes as the kubelet names them
// (hugepages-2048kB -> 2MB), which it sends a limit for on every container.
func pageSizes(t *testing.T) []string {
	dirs, _ := filepath.Glob("/sys/kernel/mm/hugepages/hugepages-*kB")
	var sizes []string
	for _, d := range dirs {
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(d), "hugepages-"), "kB"))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case kb >= 1<<20:
			sizes = append(sizes, fmt.Sprintf("%dGB", kb>>20))
		case kb >= 1<<10:
			sizes = append(sizes, fmt.Sprintf("%dMB", kb>>10))
		default:
			sizes = append(sizes, fmt.Sprintf("%dKB", kb))
		}
	}
	return sizes
}

// What a kubelet sends on every container, on this host: a limit of 0 for
// each huge page size. Where the host cannot limit huge pages, that is
// accepted; a positive limit is refused, FailedPrecondition, unless
// tolerated.
func TestKubeletHugepageLimitsOnThisHost(t *testing.T) {
	requireRoot(t)
	sizes := pageSizes(t)
	if len(sizes) == 0 {
		t.Skip("this kernel has no huge page sizes (/sys/kernel/mm/hugepages is empty): the kubelet sends no limits")
	}
	var zeros, asked []cgroups.HugepageLimit
	for _, s := range sizes {
		zeros = append(zeros, cgroups.HugepageLimit{PageSize: s, Limit: 0})
	}
	asked = append(asked, cgroups.HugepageLimit{PageSize: sizes[0], Limit: 64 << 20})
	m, h := newCgroup(t, &cgroups.Resources{HugepageLimits: zeros})
	t.Logf("sizes %v, hugetlb controller: %v", sizes, h.HasController("hugetlb"))
	err := m.Update(&cgroups.Resources{HugepageLimits: asked})
	if h.HasController("hugetlb") {
		if err != nil {
			t.Fatalf("a positive limit with the controller: %v", err)
		}
		return
	}
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("a positive limit without the controller: %v, want FailedPrecondition", err)
	}
	h.TolerateMissingHugetlb = true
	tolerant, _ := h.Manager(m.Path())
	if err := tolerant.Update(&cgroups.Resources{HugepageLimits: asked}); err != nil {
		t.Fatalf("a positive limit, tolerated: %v", err)
	}
}

// What a kubelet (v1.37, kuberuntime_container_linux.go) sends for a
// Burstable container with a memory limit, on this host's cgroup version:
// shares, quota and period, the memory limit with swap equal to it on v1
// (swap off), a zero limit for every huge page size, and on v2 in Unified
// memory.high "max", memory.swap.max "0" (swap off) and memory.oom.group
// "1". All of it must be taken, whatever of it the host can enforce.
func TestWhatTheKubeletSendsIsTaken(t *testing.T) {
	requireRoot(t)
	r := &cgroups.Resources{CPUShares: 102, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 128 << 20, MemorySwapLimit: 128 << 20}
	for _, s := range pageSizes(t) {
		r.HugepageLimits = append(r.HugepageLimits, cgroups.HugepageLimit{PageSize: s})
	}
	h, err := cgroups.Discover()
	if err != nil {
		t.Fatal(err)
	}
	if h.Mode == cgroups.Unified {
		r.MemorySwapLimit = 0
		r.Unified = map[string]string{"memory.oom.group": "1", "memory.high": "max", "memory.swap.max": "0"}
	}
	m, _ := newCgroup(t, r)
	if err := m.Update(r); err != nil {
		t.Fatalf("an in-place update with the same: %v", err)
	}
}

// On cgroup v2 a container's /sys/fs/cgroup is a cgroup2 mount in its own
// cgroup namespace: its cgroup's files at the root (memory.max is its
// limit), read-only. The container is this binary, as a helper, in a root
// of its own. (v1 hosts: pkg/oci/executor's TestContainerSeesItsCgroups.)
func TestContainerSeesItsCgroupOnV2(t *testing.T) {
	m, h := newCgroup(t, &cgroups.Resources{MemoryLimit: 64 << 20})
	if h.Mode != cgroups.Unified {
		t.Skipf("%s: the executor's own test covers v1 and hybrid hosts", h)
	}
	dir, err := m.CloneInto()
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	root := helperRoot(t)
	spec, err := generate.Spec(generate.Input{
		Container: &runtime.ContainerConfig{Command: []string{"/helper"}, Envs: []*runtime.KeyValue{{Key: helperEnv, Value: []byte("cgroupfs")}}},
		Sandbox:   &runtime.PodSandboxConfig{},
		Image:     &v1.ConfigFile{},
		Rootfs:    root, Hostname: "cgroupfs", DaemonCaps: generate.DefaultCapabilities, CgroupV2: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	bin, err := reexec.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	var out bytes.Buffer
	p, err := executor.Start(bin, spec, executor.Stdio{Stdin: strings.NewReader("go\n"), Stdout: &out, Stderr: &out}, executor.Options{CgroupDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	t.Logf("the container said:\n%s", &out)
	for _, want := range []string{"cgroup.controllers true", "memory.max 67108864 <nil>", "write true"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the container did not say %q", want)
		}
	}
}
