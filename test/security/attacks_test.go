package security

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/harness"
	"github.com/crid-dev/crid/test/images/catalog"
)

// The attacks, written from the CVE descriptions and from what a pod spec
// can carry. Each tries to reach the host; the runner checks the host after
// it whatever the attack itself concluded.
func attacks() []attack {
	as := []attack{
		{"working dir through an inherited descriptor (CVE-2024-21626)", workingDirThroughDescriptors},
		{"working dir through /proc magic links", workingDirThroughProcLinks},
		{"the host's files through the shared PID namespace's PID 1", hostThroughPodPID1},
		{"overwrite the runtime through /proc/<pid>/exe (CVE-2019-5736)", overwriteRuntimeThroughExe},
		{"descriptors leaked into the init, exec and attach", leakedDescriptors},
		{"masking with an image's /dev/null symlink (CVE-2025-31133)", maskWithDevNullSymlink},
		{"an image's /dev/console symlink (CVE-2025-52565)", devConsoleSymlink},
		{"/proc redirected by an image's symlink (CVE-2025-52881)", procRedirected},
		{"mount target swapped for a symlink between create and start", mountTargetSwapped},
		{"hostPath source swapped for a symlink between create and start", hostPathSourceSwapped},
		{"log path planted as a symlink to a host file", logPathSymlink},
		{"log directory swapped for a symlink between create and start", logDirSwapped},
		{"writing the cgroup file system from an unprivileged container", writeCgroupFS},
		{"image-declared VOLUMEs pointing out of the root (CVE-2022-23648)", imageVolumesOutOfRoot},
		{"crid's abstract unix sockets from a host-network pod (CVE-2020-15257)", abstractSockets},
		{"device nodes made with CAP_MKNOD", deviceNodes},
		{"ExecSync printing 100 MB, ten at once", execOutputFlood},
		{"objects that would overflow a List reply", listOverflow},
	}
	for _, r := range requestRefusals() {
		as = append(as, attack{"refused: " + r.name, r.run})
	}
	return as
}

// ranOrRefused turns an attack's outcome into a verdict: crid refusing it
// is refused; a container that ran is confined unless its output shows
// the sign of an escape (the runner checks the host too).
func ranOrRefused(err error, out, escapeSign string) (verdict, string) {
	switch {
	case err != nil && isRefusal(err):
		return refused, err.Error()
	case err != nil:
		// Refused, but a kubelet cannot tell bad input from a broken node.
		return escaped, "refused without InvalidArgument or FailedPrecondition: " + err.Error()
	case escapeSign != "" && strings.Contains(out, escapeSign):
		return escaped, "the container saw: " + out
	}
	return confined, "ran inside its root: " + strings.TrimSpace(out)
}

// tryToReachTheHost is what each working-dir attack runs: read the host's
// secret and plant a file in the host's /, relative to the working dir.
func (e *env) tryToReachTheHost() string {
	return fmt.Sprintf("cat ./%s 2>&1; cat ../../../../%s 2>&1; echo x > ./%s; pwd", filepath.Base(e.secretPath), filepath.Base(e.secretPath), escapeMarker)
}

func workingDirThroughDescriptors(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	ran, refusals := 0, 0
	var outs []string
	for fd := 3; fd <= 12; fd++ {
		id, err := e.container(pod, cfg, e.image, e.tryToReachTheHost(), func(c *runtime.ContainerConfig) {
			c.WorkingDir = "/proc/self/fd/" + strconv.Itoa(fd)
		})
		if err != nil {
			if !isRefusal(err) {
				return escaped, "refused without InvalidArgument or FailedPrecondition: " + err.Error()
			}
			refusals++
			continue
		}
		ran++
		outs = append(outs, e.wait(id))
	}
	out := strings.Join(outs, " | ")
	if strings.Contains(out, e.secret) {
		return escaped, "a container read the host's secret: " + out
	}
	if ran == 0 {
		return refused, fmt.Sprintf("all %d working dirs /proc/self/fd/3..12 failed StartContainer", refusals)
	}
	return confined, fmt.Sprintf("%d refused, %d ran inside the root", refusals, ran)
}

func workingDirThroughProcLinks(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(sharedPID)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	var results []string
	worst := refused
	for _, wd := range []string{"/proc/1/cwd", "/proc/1/root", "/proc/self/root/..", "/proc/self/cwd/../../..", "/proc/2/cwd"} {
		id, err := e.container(pod, cfg, e.image, e.tryToReachTheHost(), func(c *runtime.ContainerConfig) { c.WorkingDir = wd })
		if err != nil {
			if !isRefusal(err) {
				return escaped, wd + ": refused without InvalidArgument or FailedPrecondition: " + err.Error()
			}
			results = append(results, wd+": refused")
			continue
		}
		out := e.wait(id)
		if strings.Contains(out, e.secret) {
			return escaped, wd + ": read the host's secret"
		}
		worst = confined
		results = append(results, wd+": ran in "+lastLine(out))
	}
	return worst, strings.Join(results, "; ")
}

// hostThroughPodPID1: in a pod sharing one PID namespace, the pod's
// PID 1 is the infra process, whose root and working directory are
// crid's choice. A container reads through them (/proc/1/root,
// /proc/1/cwd, and .. from there) at run time, as root with the default
// capabilities, and tries to write there. Until 2026-12-03 they were the
// host's /: it read the secret and wrote the marker.
func hostThroughPodPID1(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(sharedPID)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	base := filepath.Base(e.secretPath)
	script := fmt.Sprintf("cat /proc/1/root/%[1]s /proc/1/cwd/%[1]s /proc/1/root/../../../%[1]s /proc/1/cwd/../../%[1]s 2>&1; "+
		"echo x > /proc/1/root/%[2]s 2>&1; echo x > /proc/1/root/../../%[2]s 2>&1; ls -a /proc/1/root/ 2>&1 | tr '\\n' ' '", base, escapeMarker)
	id, err := e.container(pod, cfg, e.image, script, nil)
	if err != nil {
		return refused, err.Error()
	}
	out := e.wait(id)
	if strings.Contains(out, e.secret) {
		return escaped, "read the host's secret through the pod's PID 1: " + lastLine(out)
	}
	return confined, lastLine(out)
}

// sharedPID makes a pod share one PID namespace, with an infra process
// as its PID 1.
func sharedPID(c *runtime.PodSandboxConfig) {
	c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	// Log lines are "<time> <stream> <tag> <content>".
	if f := strings.SplitN(l, " ", 4); len(f) == 4 {
		return f[3]
	}
	return l
}

func overwriteRuntimeThroughExe(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(sharedPID)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	// The container opens for writing the executable of every process it
	// can see, over and over, while crid execs into it (each exec is a
	// crid process joining the container) and starts a second container
	// of the pod (its init is crid's too, until it execs).
	watcher := `while :; do for p in /proc/[0-9]*; do [ "$p" = /proc/$$ ] && continue; if (: >> $p/exe) 2>/dev/null; then echo WROTE $p $(cat $p/comm); fi; done; done`
	id, err := e.container(pod, cfg, e.image, watcher, nil)
	if err != nil {
		return refused, err.Error()
	}
	for range 20 {
		e.exec(id, "true")
	}
	second, _ := e.container(pod, cfg, e.image, "true", nil)
	if second != "" {
		e.wait(second)
	}
	e.rt.StopContainer(context.Background(), &runtime.StopContainerRequest{ContainerId: id, Timeout: 1})
	out := e.wait(id)
	if strings.Contains(out, "WROTE") {
		return escaped, "opened for writing: " + out
	}
	return confined, "no process's executable could be opened for writing through /proc/<pid>/exe during 20 execs and a second container's start"
}

func leakedDescriptors(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	// PID 1 is the shell crid exec'd as the init: its descriptors are what
	// the init left open. An exec's own are seen by ls of /proc/self/fd
	// (3 is ls's own directory).
	id, err := e.container(pod, cfg, e.image, "sleep 300", func(c *runtime.ContainerConfig) { c.Stdin = true })
	if err != nil {
		return refused, err.Error()
	}
	initFDs, _ := e.exec(id, "ls /proc/1/fd | tr '\\n' ' '")
	execFDs, _ := e.exec(id, "ls /proc/self/fd | tr '\\n' ' '")
	// While a client is attached (crictl, through the streaming server
	// and the pod's monitor), the container's process holds no more.
	attach := exec.Command("crictl", "--runtime-endpoint", "unix://"+e.d.Socket, "attach", "-i", id)
	stdin, _ := attach.StdinPipe()
	if err := attach.Start(); err != nil {
		return refused, "crictl attach: " + err.Error()
	}
	defer func() { stdin.Close(); attach.Process.Kill(); attach.Wait() }()
	time.Sleep(500 * time.Millisecond)
	attachedFDs, _ := e.exec(id, "ls /proc/1/fd | tr '\\n' ' '")
	// Still attached: not exited, not a zombie (which signal 0 would not
	// tell). Any live state counts: on a busy disk crictl may be in D,
	// faulting its pages in, as it was in one suite run.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", attach.Process.Pid)); err != nil || strings.Contains(string(stat), ") Z ") || strings.Contains(string(stat), ") X ") {
		return escaped, fmt.Sprintf("crictl attach ended before the check (%.60q, %v): the attach case was not tried", stat, err)
	}
	links, _ := e.exec(id, "ls -l /proc/1/fd")
	if strings.TrimSpace(initFDs) != "0 1 2" || strings.TrimSpace(execFDs) != "0 1 2 3" || strings.TrimSpace(attachedFDs) != "0 1 2" {
		return escaped, fmt.Sprintf("init holds %q (%q while attached), an exec %q: %s", initFDs, attachedFDs, execFDs, links)
	}
	return confined, "the init holds 0 1 2, also while attached; an exec 0 1 2 (and ls's own 3)"
}

func maskWithDevNullSymlink(e *env) (verdict, string) {
	img := e.buildImage("devnull-link", v1.Config{}, []catalog.Entry{
		catalog.Dir("dev", 0o755), catalog.Symlink("dev/null", "/proc/sys/kernel/core_pattern"),
	})
	out, err := e.runOnce(nil, img, "echo '|/tmp/evil' > /proc/kcore; echo '|/tmp/evil' > /dev/null; head -c 1 /proc/kcore | wc -c; cat /proc/sys/kernel/core_pattern", nil)
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	return ranOrRefused(nil, out, "|/tmp/evil")
}

func devConsoleSymlink(e *env) (verdict, string) {
	img := e.buildImage("console-link", v1.Config{}, []catalog.Entry{
		catalog.Dir("dev", 0o755), catalog.Symlink("dev/console", "/proc/sys/kernel/core_pattern"),
	})
	out, err := e.runOnce(nil, img, "echo '|/tmp/evil' > /dev/console; ls -l /dev/console; cat /proc/sys/kernel/core_pattern", func(c *runtime.ContainerConfig) {
		c.Tty = true
	})
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	return ranOrRefused(nil, out, "|/tmp/evil")
}

func procRedirected(e *env) (verdict, string) {
	img := e.buildImage("proc-link", v1.Config{}, []catalog.Entry{
		catalog.Dir("target", 0o755), catalog.Symlink("proc", "/../../../../target"),
	})
	out, err := e.runOnce(func(c *runtime.PodSandboxConfig) {
		c.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
	}, img, "ls /target | head -3 | tr '\\n' ' '; echo '|/tmp/evil' > /proc/sys/kernel/core_pattern 2>&1", func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{OomScoreAdj: 500}}
	})
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	return ranOrRefused(nil, out, "")
}

func mountTargetSwapped(e *env) (verdict, string) {
	vol := filepath.Join(e.dir, "volume")
	os.MkdirAll(vol, 0o755)
	os.WriteFile(filepath.Join(vol, "from-volume"), []byte("v"), 0o644)
	img := e.buildImage("mount-target", v1.Config{}, []catalog.Entry{catalog.Dir("data", 0o755), catalog.Dir("data/sub", 0o755)})
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	e.n++
	name := fmt.Sprintf("swap-%d", e.n)
	resp, err := e.rt.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: img}, LogPath: name + ".log",
		Command: []string{"sh", "-c", "ls /etc | tr '\\n' ' '"},
		Mounts:  []*runtime.Mount{{ContainerPath: "/data/sub", HostPath: vol}},
	}})
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	// Between create and start, what a second container sharing the
	// root's directory could do: the target becomes a symlink out.
	target := filepath.Join(e.rootfs(resp.ContainerId), "data", "sub")
	if err := os.Remove(target); err != nil {
		return refused, "could not swap the target: " + err.Error()
	}
	os.Symlink("/../../../../../../etc", target)
	hostEtc, _ := os.ReadFile("/proc/self/mountinfo")
	_, err = e.rt.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: resp.ContainerId})
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	out := e.wait(resp.ContainerId)
	after, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Count(string(after), " /etc ") > strings.Count(string(hostEtc), " /etc ") {
		return escaped, "a mount appeared on the host's /etc"
	}
	if !strings.Contains(out, "from-volume") {
		return confined, "the volume did not land in the container's /etc: " + lastLine(out)
	}
	return confined, "the symlink resolved inside the root: the volume is the container's /etc, the host's untouched"
}

func hostPathSourceSwapped(e *env) (verdict, string) {
	// A hostPath volume a tenant can write (through another container
	// mounting its parent): between CreateContainer and StartContainer
	// the subdirectory the container mounts becomes a symlink to a host
	// directory no pod was given.
	vol := filepath.Join(e.dir, "shared-volume")
	inner := filepath.Join(vol, "inner")
	os.MkdirAll(inner, 0o755)
	hostOnly := filepath.Join(e.dir, "host-only")
	os.MkdirAll(hostOnly, 0o700)
	os.WriteFile(filepath.Join(hostOnly, "secret"), []byte(e.secret), 0o600)
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	e.n++
	name := fmt.Sprintf("source-%d", e.n)
	resp, err := e.rt.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: e.image}, LogPath: name + ".log",
		Command: []string{"sh", "-c", "cat /data/secret 2>&1"},
		Mounts:  []*runtime.Mount{{ContainerPath: "/data", HostPath: inner}},
	}})
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	os.Remove(inner)
	os.Symlink(hostOnly, inner)
	defer os.Remove(inner)
	if _, err := e.rt.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		return ranOrRefused(err, "", "")
	}
	return ranOrRefused(nil, e.wait(resp.ContainerId), e.secret)
}

func logPathSymlink(e *env) (verdict, string) {
	victim := filepath.Join(e.dir, "victim")
	os.WriteFile(victim, []byte("untouched\n"), 0o644)
	os.MkdirAll(e.logDir, 0o755)
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	os.Symlink(victim, filepath.Join(e.logDir, "planted.log"))
	id, err := e.container(pod, cfg, e.image, "echo overwritten", func(c *runtime.ContainerConfig) { c.LogPath = "planted.log" })
	if id != "" && err == nil {
		e.wait(id)
	}
	if data, _ := os.ReadFile(victim); string(data) != "untouched\n" {
		return escaped, fmt.Sprintf("the host file behind the symlink now holds %q", data)
	}
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	return confined, "the container ran, its output did not follow the symlink"
}

func logDirSwapped(e *env) (verdict, string) {
	victimDir := filepath.Join(e.dir, "victim-dir")
	os.MkdirAll(victimDir, 0o755)
	victim := filepath.Join(victimDir, "0.log")
	os.WriteFile(victim, []byte("untouched\n"), 0o644)
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	e.n++
	sub := fmt.Sprintf("ctr-%d", e.n)
	resp, err := e.rt.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: sub}, Image: &runtime.ImageSpec{Image: e.image},
		Command: []string{"echo", "overwritten"}, LogPath: sub + "/0.log",
	}})
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	// The container's log directory, as the kubelet makes it, becomes a
	// symlink to a host directory before the container starts.
	os.RemoveAll(filepath.Join(e.logDir, sub))
	os.Symlink(victimDir, filepath.Join(e.logDir, sub))
	_, err = e.rt.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: resp.ContainerId})
	if err == nil {
		e.wait(resp.ContainerId)
	}
	if data, _ := os.ReadFile(victim); string(data) != "untouched\n" {
		return escaped, fmt.Sprintf("the host file behind the swapped directory now holds %q", data)
	}
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	return confined, "the container ran, its output did not follow the symlink"
}

func writeCgroupFS(e *env) (verdict, string) {
	script := `for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do mkdir $d/crid-attack 2>/dev/null && echo MADE $d; echo 1 > $d/notify_on_release 2>/dev/null && echo WROTE $d; echo /tmp/evil > $d/release_agent 2>/dev/null && echo AGENT $d; done; echo done`
	out, err := e.runOnce(nil, e.image, script, nil)
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	if matches, _ := filepath.Glob("/sys/fs/cgroup/*/crid-attack"); len(matches) > 0 {
		for _, m := range matches {
			os.Remove(m)
		}
		return escaped, fmt.Sprintf("made %v on the host", matches)
	}
	for _, sign := range []string{"MADE", "WROTE", "AGENT"} {
		if strings.Contains(out, sign) {
			return escaped, "wrote the cgroup file system: " + out
		}
	}
	return confined, "every mkdir and write under /sys/fs/cgroup failed"
}

func imageVolumesOutOfRoot(e *env) (verdict, string) {
	img := e.buildImage("volumes", v1.Config{Volumes: map[string]struct{}{
		"/../../../../" + escapeMarker: {}, "/vol": {}, "/link": {},
	}}, []catalog.Entry{catalog.Dir("vol", 0o755), catalog.Symlink("link", "/proc/1/root")})
	out, err := e.runOnce(nil, img, "echo x > /vol/f && echo vol-writable; ls /"+escapeMarker+" 2>&1 | head -1", nil)
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	return ranOrRefused(nil, out, "")
}

func abstractSockets(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(func(c *runtime.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	})
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	id, err := e.container(pod, cfg, e.image, "grep ' @' /proc/net/unix | awk '{print $7, $8}'", nil)
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	seen := e.wait(id)
	// The sockets crid and the pod's monitor hold, by inode.
	ours := map[string]bool{}
	pids := []int{e.d.Cmd.Process.Pid}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pids[0], pids[0])); err == nil {
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
	}
	for _, m := range harness.Monitors(e.dir) {
		pids = append(pids, m)
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
				ours[strings.Trim(l[len("socket:"):], "[]")] = true
			}
		}
	}
	for _, line := range strings.Split(seen, "\n") {
		f := strings.Fields(lastLine(line))
		if len(f) == 2 && ours[f[0]] {
			return escaped, "the host-network container sees crid's abstract socket " + f[1]
		}
	}
	return confined, fmt.Sprintf("crid and its monitors (%d processes) hold no abstract unix socket a host-network pod could reach", len(pids))
}

func deviceNodes(e *env) (verdict, string) {
	script := `mknod /tmp/mem c 1 1 && echo made-mem; head -c 1 /tmp/mem >/dev/null 2>&1 && echo READ-MEM; ` +
		`mknod /tmp/kmsg c 1 11 && echo made-kmsg; head -c 1 /tmp/kmsg >/dev/null 2>&1 && echo READ-KMSG; ` +
		`for d in /sys/dev/block/*; do mm=$(basename $d); mknod /tmp/b b ${mm%:*} ${mm#*:} 2>/dev/null; head -c 1 /tmp/b >/dev/null 2>&1 && echo READ-BLOCK $mm; rm -f /tmp/b; done; echo done`
	out, err := e.runOnce(nil, e.image, script, nil)
	if err != nil {
		return ranOrRefused(err, "", "")
	}
	if strings.Contains(out, "READ-") {
		return escaped, "read a host device: " + out
	}
	return confined, "nodes could be made (CAP_MKNOD) but the device cgroup refused every open of /dev/mem, /dev/kmsg and the host's block devices"
}

func execOutputFlood(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	id, err := e.container(pod, cfg, e.image, "sleep 300", nil)
	if err != nil {
		return refused, err.Error()
	}
	pid := e.d.Cmd.Process.Pid
	before := memKB(pid, "VmRSS")
	// Resetting the peak (clear_refs 5) makes VmHWM the peak from now on.
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var notes []string
	start := time.Now()
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.rt.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id, Timeout: 120,
				Cmd: []string{"sh", "-c", "head -c 100000000 /dev/zero"}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				notes = append(notes, err.Error())
				return
			}
			notes = append(notes, fmt.Sprintf("%d bytes kept, stderr %q", len(resp.Stdout), strings.TrimSpace(string(resp.Stderr))))
		}()
	}
	wg.Wait()
	peak := memKB(pid, "VmHWM")
	growth := peak - before
	detail := fmt.Sprintf("crid RSS %d kB before, peak %d kB during (+%d kB) in %v; first reply: %s", before, peak, growth, time.Since(start).Round(time.Millisecond), notes[0])
	if growth > 32<<10 {
		return escaped, "the output grew crid: " + detail
	}
	return confined, detail
}

func memKB(pid int, field string) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func listOverflow(e *env) (verdict, string) {
	pod, cfg, remove, err := e.pod(nil)
	if err != nil {
		return refused, err.Error()
	}
	defer remove()
	// Annotations as large as Kubernetes allows one object (256 KiB); 70
	// of them would be past a 16 MiB reply.
	big := map[string]string{"attack": strings.Repeat("a", 250<<10)}
	made := 0
	var refusal error
	for i := range 70 {
		_, err := e.rt.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: fmt.Sprintf("big-%d", i)}, Image: &runtime.ImageSpec{Image: e.image},
			Annotations: big,
		}})
		if err != nil {
			refusal = err
			break
		}
		made++
	}
	_, listErr := e.rt.ListContainers(context.Background(), &runtime.ListContainersRequest{})
	switch {
	case listErr != nil:
		return escaped, fmt.Sprintf("after %d containers ListContainers fails: %v", made, listErr)
	case refusal == nil:
		return escaped, "70 containers of 250 KiB each were all taken"
	case !isRefusal(refusal):
		return escaped, "refused without a refusal code: " + refusal.Error()
	}
	return refused, fmt.Sprintf("container %d refused (%v); ListContainers still answers", made+1, shorten(refusal.Error()))
}

func shorten(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

// A request that must be refused with InvalidArgument: taking it is an
// escape, whatever happens next.
type refusal struct {
	name string
	run  func(e *env) (verdict, string)
}

func mustRefuse(err error) (verdict, string) {
	if err == nil {
		return escaped, "accepted"
	}
	if !isRefusal(err) {
		return escaped, "refused, but with " + err.Error()
	}
	return refused, shorten(err.Error())
}

func requestRefusals() []refusal {
	podWith := func(edit func(*runtime.PodSandboxConfig)) func(e *env) (verdict, string) {
		return func(e *env) (verdict, string) {
			_, _, remove, err := e.pod(edit)
			if err == nil {
				remove()
			}
			return mustRefuse(err)
		}
	}
	ctrWith := func(edit func(*runtime.ContainerConfig)) func(e *env) (verdict, string) {
		return func(e *env) (verdict, string) {
			pod, cfg, remove, err := e.pod(nil)
			if err != nil {
				return refused, err.Error()
			}
			defer remove()
			_, err = e.rt.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg,
				Config: func() *runtime.ContainerConfig {
					c := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "refused"}, Image: &runtime.ImageSpec{Image: e.image}}
					edit(c)
					return c
				}()})
			return mustRefuse(err)
		}
	}
	huge := strings.Repeat("x", 1<<20)
	return []refusal{
		{"a hostname injecting a line into /etc/hosts", podWith(func(c *runtime.PodSandboxConfig) { c.Hostname = "a\n6.6.6.6 kubernetes.default" })},
		{"a hostname with NUL", podWith(func(c *runtime.PodSandboxConfig) { c.Hostname = "a\x00b" })},
		{"a DNS server injecting a nameserver", podWith(func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.0.0.10\nnameserver 6.6.6.6"}}
		})},
		{"a DNS search injecting options", podWith(func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Searches: []string{"svc\noptions ndots:0"}}
		})},
		{"a log directory under /proc", podWith(func(c *runtime.PodSandboxConfig) { c.LogDirectory = "/proc/1" })},
		{"a relative log directory", podWith(func(c *runtime.PodSandboxConfig) { c.LogDirectory = "var/log" })},
		{"a negative run_as_user on the pod", podWith(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: -1}
		})},
		{"a pod name of 1 MiB", podWith(func(c *runtime.PodSandboxConfig) { c.Metadata.Name = huge })},
		{"a host port mapped twice", podWith(func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 18080}, {ContainerPort: 81, HostPort: 18080}}
		})},
		{"a host IP that does not parse", podWith(func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 18081, HostIp: "127.0.0.999"}}
		})},
		{"sysctl value smuggling another sysctl (CVE-2022-0811)", podWith(func(c *runtime.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1+kernel.core_pattern=|/tmp/evil"}
		})},
		{"sysctl name smuggling another sysctl", podWith(func(c *runtime.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced=1+kernel.core_pattern": "|/tmp/evil"}
		})},
		{"a sysctl of the whole node", podWith(func(c *runtime.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.core_pattern": "|/tmp/evil"}
		})},
		{"a sysctl value with a newline", podWith(func(c *runtime.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0\nkernel.core_pattern=|/tmp/evil"}
		})},
		{"a mount replacing the container's root (/..)", ctrWith(func(c *runtime.ContainerConfig) {
			c.Mounts = []*runtime.Mount{{ContainerPath: "/..", HostPath: "/"}}
		})},
		{"a log path climbing out of the log directory", ctrWith(func(c *runtime.ContainerConfig) { c.LogPath = "../../../../" + escapeMarker })},
		{"an env key holding '='", ctrWith(func(c *runtime.ContainerConfig) {
			c.Envs = []*runtime.KeyValue{{Key: "LD_PRELOAD=/tmp/x.so X", Value: []byte("1")}}
		})},
		{"a container name of 1 MiB", ctrWith(func(c *runtime.ContainerConfig) { c.Metadata.Name = huge })},
		{"a cpuset with a newline", ctrWith(func(c *runtime.ContainerConfig) {
			c.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpusetCpus: "0\n1"}}
		})},
		{"a cpuset past the node's CPUs", ctrWith(func(c *runtime.ContainerConfig) {
			c.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpusetCpus: "4000"}}
		})},
		{"an argument over the kernel's limit", ctrWith(func(c *runtime.ContainerConfig) { c.Args = []string{huge} })},
		{"a relative masked path", ctrWith(func(c *runtime.ContainerConfig) {
			c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{MaskedPaths: []string{"proc/kcore"}}}
		})},
	}
}
