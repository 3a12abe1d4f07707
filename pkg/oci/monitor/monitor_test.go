package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/oci/generate"
	"github.com/crid-dev/crid/pkg/reexec"
	"github.com/crid-dev/crid/test/harness"
	"github.com/crid-dev/crid/test/images/catalog"
)

// As in crid's main: the init must exec from the main thread.
func init() { goruntime.LockOSThread() }

// The test binary plays crid-monitor: the helpers and the init.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == StartCommand {
		os.Exit(RunStart(os.Args[2]))
	}
	if len(os.Args) > 1 && os.Args[1] == ExitedCommand {
		// The tests tell by this file whether crid-podmon ran the helper.
		if len(os.Args) > 2 {
			os.WriteFile(filepath.Join(os.Args[2], exitHelperRan), nil, 0o600)
		}
		os.Exit(RunExited(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == executor.InitCommand {
		os.Exit(executor.Init())
	}
	os.Exit(m.Run())
}

// exitHelperRan is the file the exit helper leaves in a bundle here.
const exitHelperRan = "exit-helper-ran"

var podmon struct {
	once sync.Once
	path string
	err  error
}

// binaries seals crid-podmon, built from its source once per test run,
// and this test binary as its helper.
func binaries(t testing.TB) Binaries {
	t.Helper()
	podmon.once.Do(func() {
		dir, err := os.MkdirTemp("", "crid-podmon-test")
		if err != nil {
			podmon.err = err
			return
		}
		podmon.path = filepath.Join(dir, "crid-podmon")
		podmon.err = harness.BuildPodmon("../../..", podmon.path)
	})
	if podmon.err != nil {
		t.Fatal(podmon.err)
	}
	mon, err := reexec.SealFile(podmon.path)
	if err != nil {
		t.Fatal(err)
	}
	helper, err := reexec.Seal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close(); helper.Close() })
	return Binaries{Monitor: mon, Helper: helper}
}

type fixture struct {
	root, monDir string
	client       *Client
	cg           *cgroups.Hierarchy
	// helper: bundles get no start plan, so the start helper starts them.
	helper bool
}

func setup(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{root: catalog.BusyboxRoot(t), monDir: t.TempDir()}
	var err error
	if f.client, err = Ensure(context.Background(), binaries(t), f.monDir, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.client.Shutdown(context.Background()) })
	if f.cg, err = cgroups.Discover(); err != nil {
		t.Fatal(err)
	}
	return f
}

// bundle writes a container's config.json and makes its cgroup.
func (f *fixture) bundle(t testing.TB, id, script string, edit ...func(*runtime.ContainerConfig)) string {
	t.Helper()
	cgPath := fmt.Sprintf("/crid-test-mon-%d/%s", os.Getpid(), id)
	cg, _ := f.cg.Manager(cgPath)
	if err := cg.Create(&cgroups.Resources{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A test that failed half-way may leave its container running:
		// kill it, so the monitor can shut down and the cgroup go.
		f.client.Kill(context.Background(), id, syscall.SIGKILL)
		cg.Destroy(t.Context())
		parent, _ := f.cg.Manager(fmt.Sprintf("/crid-test-mon-%d", os.Getpid()))
		parent.Destroy(t.Context())
	})
	cfg := &runtime.ContainerConfig{Command: []string{"/bin/sh", "-c", script}}
	for _, e := range edit {
		e(cfg)
	}
	spec, err := generate.Spec(generate.Input{
		Container: cfg,
		Sandbox:   &runtime.PodSandboxConfig{},
		Image:     &v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin"}}},
		Rootfs:    f.root, CgroupsPath: cgPath, DaemonCaps: generate.DefaultCapabilities,
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), id)
	os.Mkdir(dir, 0o700)
	data, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
	if !f.helper {
		if err := WriteStartPlan(dir, spec, cg); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// editSpec changes a bundle's config.json, and its start plan if it has
// one.
func (f *fixture) editSpec(t testing.TB, bundle string, edit func(*specs.Spec)) {
	t.Helper()
	cfgPath := filepath.Join(bundle, "config.json")
	var spec specs.Spec
	data, _ := os.ReadFile(cfgPath)
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	edit(&spec)
	data, _ = json.Marshal(spec)
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if f.helper {
		return
	}
	cg, err := f.cg.Manager(spec.Linux.CgroupsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteStartPlan(bundle, &spec, cg); err != nil {
		t.Fatal(err)
	}
}

func waitExit(t testing.TB, bundle string) Exit {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		e, ok, err := ReadExit(bundle)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatal("no exit recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMonitorRunsLogsAndRecordsExit(t *testing.T) {
	f := setup(t)
	b := f.bundle(t, "short", "echo out; echo err >&2; exit 7")
	logPath := filepath.Join(t.TempDir(), "short.log")
	pid, err := f.client.Start(context.Background(), Request{ID: "short", Bundle: b, Log: logPath})
	if err != nil || pid == 0 {
		t.Fatalf("start: %d, %v", pid, err)
	}
	e := waitExit(t, b)
	if e.ExitCode != 7 || e.Signal != 0 || e.Pid != pid || e.FinishedAt.IsZero() {
		t.Fatalf("exit %+v", e)
	}
	// Two pipes: the order between the streams is not kept, within each it is.
	got := readLog(t, logPath)
	lines := map[string]bool{}
	for _, l := range got {
		lines[strings.Join(l, " ")] = true
	}
	if len(got) != 2 || !lines["stdout F out"] || !lines["stderr F err"] {
		t.Fatalf("log %q", got)
	}
}

func TestMonitorKillsAndReopens(t *testing.T) {
	f := setup(t)
	b := f.bundle(t, "long", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.05; done")
	logPath := filepath.Join(t.TempDir(), "long.log")
	if _, err := f.client.Start(context.Background(), Request{ID: "long", Bundle: b, Log: logPath}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	os.Rename(logPath, logPath+".1")
	if err := f.client.Reopen(context.Background(), "long"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := f.client.Shutdown(context.Background()); err == nil || !strings.Contains(err.Error(), "still run") {
		t.Errorf("shutdown with a container running: %v", err)
	}
	if err := f.client.Kill(context.Background(), "long", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, b)
	if e.Signal != int(syscall.SIGKILL) || e.ExitCode != 137 {
		t.Fatalf("exit %+v", e)
	}
	if old, cur := readLog(t, logPath+".1"), readLog(t, logPath); len(old) == 0 || len(cur) == 0 {
		t.Fatalf("rotation lost lines: %d before, %d after", len(old), len(cur))
	}
	if err := f.client.Kill(context.Background(), "long", syscall.SIGTERM); err != nil {
		t.Errorf("killing an exited container: %v", err)
	}
}

func TestOOMKillIsRecorded(t *testing.T) {
	f := setup(t)
	b := f.bundle(t, "oom", "x=a; while true; do x=$x$x; done")
	cg, _ := f.cg.Manager(fmt.Sprintf("/crid-test-mon-%d/oom", os.Getpid()))
	if err := cg.Update(&cgroups.Resources{MemoryLimit: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Start(context.Background(), Request{ID: "oom", Bundle: b, Log: ""}); err != nil {
		t.Fatal(err)
	}
	e := waitExit(t, b)
	if !e.OOMKilled || e.ExitCode != 137 {
		t.Fatalf("exit %+v, want an OOM kill", e)
	}
	// What filled the limit, read at the kill: the shell's string, anon.
	r := e.OOM
	if r == nil || !r.AtKill || r.Limit != 16<<20 || r.Anon < 8<<20 || r.Anon > r.Limit {
		t.Fatalf("OOM report %+v", r)
	}
	if v := r.Victim; v == nil || v.Comm != "sh" || v.Pid == 0 || v.TaskCgroup != cg.Path() || v.LimitCgroup != cg.Path() {
		t.Errorf("victim %+v, want sh in %s", v, cg.Path())
	}
}

// crid-podmon records most exits itself and runs the Go exit helper only
// for what needs it: processes the container left in its cgroup (to kill
// them), an OOM kill (to report what filled the memory).
func TestExitHelperRunsOnlyWhenNeeded(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		name, script string
		hostPID      bool  // outside a PID namespace of its own, a child outlives the container
		memoryLimit  int64 // room for the init too: a -race test binary is large
		code         int
		oom, helper  bool
	}{
		{name: "plain", script: "exit 3", code: 3},
		{name: "child-in-own-pidns", script: "sleep 1000 & exit 4", code: 4},
		{name: "leftover", script: "(trap '' TERM; sleep 1000) & exit 5", hostPID: true, code: 5, helper: true},
		{name: "oom", script: "x=a; while true; do x=$x$x; done", memoryLimit: 64 << 20, code: 137, oom: true, helper: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := f.bundle(t, tc.name, tc.script)
			if tc.hostPID {
				f.editSpec(t, b, func(s *specs.Spec) {
					s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool {
						return n.Type == specs.PIDNamespace
					})
				})
			}
			cg, _ := f.cg.Manager(fmt.Sprintf("/crid-test-mon-%d/%s", os.Getpid(), tc.name))
			if tc.memoryLimit != 0 {
				if err := cg.Update(&cgroups.Resources{MemoryLimit: tc.memoryLimit}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.client.Start(context.Background(), Request{ID: tc.name, Bundle: b}); err != nil {
				t.Fatal(err)
			}
			e := waitExit(t, b)
			if e.ExitCode != tc.code || e.OOMKilled != tc.oom || e.FinishedAt.IsZero() {
				t.Fatalf("exit %+v, want code %d, OOM-killed %v", e, tc.code, tc.oom)
			}
			_, err := os.Stat(filepath.Join(b, exitHelperRan))
			if ran := err == nil; ran != tc.helper {
				t.Errorf("exit helper ran: %v, want %v", ran, tc.helper)
			}
			// Whichever recorded it, the exit comes after the cgroup is empty.
			if pids, err := cg.Pids(); err != nil || len(pids) != 0 {
				t.Errorf("cgroup at the exit record: %v, %v; want it empty", pids, err)
			}
		})
	}
}

func TestAttachCarriesStdinAndOutput(t *testing.T) {
	f := setup(t)
	b := f.bundle(t, "cat", "cat")
	if _, err := f.client.Start(context.Background(), Request{ID: "cat", Bundle: b, Stdin: true, StdinOnce: true}); err != nil {
		t.Fatal(err)
	}
	conn, err := f.client.Attach(context.Background(), "cat")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello through attach\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	stream, data, err := ReadFrame(conn)
	if err != nil || stream != FrameStdout || string(data) != "hello through attach\n" {
		t.Fatalf("frame %d %q, %v", stream, data, err)
	}
	// The client leaves: with StdinOnce, stdin closes and cat ends.
	conn.(*net.UnixConn).CloseWrite()
	if e := waitExit(t, b); e.ExitCode != 0 {
		t.Fatalf("exit %+v", e)
	}
	if _, err := f.client.Attach(context.Background(), "cat"); err == nil {
		t.Error("attached to an exited container")
	}
}

// TestTerminalAttachAndResize: a container with a terminal takes attached
// input through it, echoes as a terminal does, follows a resize, and its
// log holds its lines without the terminal's CRs.
func TestTerminalAttachAndResize(t *testing.T) {
	f := setup(t)
	// The container says nothing before it reads: what comes before an
	// attach is the log's, not the client's.
	b := f.bundle(t, "tty", `read line; stty size; echo "got $line"`, func(c *runtime.ContainerConfig) {
		c.Tty, c.Stdin = true, true
	})
	logPath := filepath.Join(t.TempDir(), "tty.log")
	if _, err := f.client.Start(context.Background(), Request{ID: "tty", Bundle: b, Log: logPath, Stdin: true}); err != nil {
		t.Fatal(err)
	}
	conn, err := f.client.Attach(context.Background(), "tty")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out strings.Builder
	readUntil := func(want string) {
		t.Helper()
		for !strings.Contains(out.String(), want) {
			stream, data, err := ReadFrame(conn)
			if err != nil {
				t.Fatalf("waiting for %q in %q: %v", want, out.String(), err)
			}
			if stream != FrameStdout {
				t.Fatalf("a terminal's output came as stream %d", stream)
			}
			out.Write(data)
		}
	}
	if err := f.client.Resize(context.Background(), "tty", 100, 40); err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("hello\n"))
	readUntil("got hello\r\n")
	if !strings.Contains(out.String(), "40 100\r\n") {
		t.Errorf("size after resize: %q", out.String())
	}
	if e := waitExit(t, b); e.ExitCode != 0 {
		t.Fatalf("exit %+v", e)
	}
	var lines []string
	for _, l := range readLog(t, logPath) {
		lines = append(lines, strings.Join(l, " "))
	}
	want := []string{"stdout F hello", "stdout F 40 100", "stdout F got hello"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("log %q, want %q", lines, want)
	}
	if err := f.client.Resize(context.Background(), "tty", 80, 24); err == nil {
		t.Error("resized an exited container")
	}
}

// TestCgroupNamespaceIsRootedAtTheContainersCgroup: the container's
// cgroup namespace is made after the init is in the container's cgroup,
// so the container sees its own cgroup as / and nothing above it.
func TestCgroupNamespaceIsRootedAtTheContainersCgroup(t *testing.T) {
	f := setup(t)
	b := f.bundle(t, "cgns", "cat /proc/self/cgroup")
	// crid asks for a cgroup namespace on cgroup v2 hosts only (as
	// containerd does); ask for it here whatever the host.
	f.editSpec(t, b, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	})
	logPath := filepath.Join(t.TempDir(), "cgns.log")
	if _, err := f.client.Start(context.Background(), Request{ID: "cgns", Bundle: b, Log: logPath}); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, b); e.ExitCode != 0 {
		t.Fatalf("exit %+v", e)
	}
	lines := readLog(t, logPath)
	if len(lines) == 0 {
		t.Fatal("no output")
	}
	for _, l := range lines {
		entry := l[len(l)-1]
		if !strings.HasSuffix(entry, ":/") {
			t.Errorf("the container sees a cgroup path beyond its own root: %q", entry)
		}
	}
}
