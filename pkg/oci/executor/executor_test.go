package executor

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/oci/generate"
	"github.com/crid-dev/crid/pkg/reexec"
	"github.com/crid-dev/crid/test/images/catalog"
)

// As in crid's main: the init must exec from the main thread.
func init() { goruntime.LockOSThread() }

func TestMain(m *testing.M) {
	// The sealed copy of this test binary is the container's init.
	if len(os.Args) > 1 && os.Args[1] == InitCommand {
		os.Exit(Init())
	}
	if len(os.Args) > 2 && os.Args[1] == "verify-cwd-outside-root" {
		os.Exit(verifyCwdOutsideRoot(os.Args[2]))
	}
	// As the monitor is: a container in a user namespace and a PID
	// namespace is the child of an init that exits.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

type run struct {
	stdout, stderr string
	status         syscall.WaitStatus
	initExe        string
}

// runIn runs a shell script in a container made from generate.Spec.
func runIn(t *testing.T, root, script string, edit func(*generate.Input)) (run, error) {
	t.Helper()
	return runSpec(t, root, script, edit, nil)
}

// runSpec is runIn with a last say over the generated spec, for what no
// CRI request sets (an NRI plugin's adjustments).
func runSpec(t *testing.T, root, script string, edit func(*generate.Input), editSpec func(*specs.Spec)) (run, error) {
	t.Helper()
	bin, err := reexec.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	in := generate.Input{
		Container: &runtime.ContainerConfig{Command: []string{"/bin/sh", "-c", script}, WorkingDir: "/work-dir"},
		Sandbox:   &runtime.PodSandboxConfig{},
		Image:     &v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin"}}},
		Users:     generate.ParseUsers(readFile(root, "etc/passwd"), readFile(root, "etc/group")),
		Rootfs:    root, Hostname: "ctr-host",
		DaemonCaps: generate.DefaultCapabilities,
	}
	if edit != nil {
		edit(&in)
	}
	spec, err := generate.Spec(in)
	if err != nil {
		t.Fatal(err)
	}
	if editSpec != nil {
		editSpec(spec)
	}
	var out, errOut bytes.Buffer
	var r run
	p, err := Start(bin, spec, Stdio{Stdout: &out, Stderr: &errOut}, Options{Place: func(pid int) error {
		r.initExe, _ = os.Readlink(filepathProc(pid, "exe"))
		return nil
	}})
	if err != nil {
		return r, err
	}
	if p.Console != nil {
		// Read until the last holder of the terminal is gone (EIO).
		io.Copy(&out, p.Console)
		p.Console.Close()
	}
	r.status, err = p.Wait()
	r.stdout, r.stderr = out.String(), errOut.String()
	return r, err
}

func filepathProc(pid int, name string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), name)
}

func readFile(root, p string) []byte {
	data, _ := os.ReadFile(filepath.Join(root, p))
	return data
}

func secctx(in *generate.Input) *runtime.LinuxContainerSecurityContext {
	if in.Container.Linux == nil {
		in.Container.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}}
	}
	return in.Container.Linux.SecurityContext
}

func TestContainerIsIsolated(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	// A descriptor crid holds without close-on-exec must not reach the
	// container (CVE-2024-21626).
	leak, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)
	r, err := runIn(t, root, `echo pid=$$; hostname; pwd; ls /proc/self/fd | tr '\n' ' '; echo; cat /proc/self/mountinfo; id`, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	t.Logf("container said:\n%s", r.stdout)
	lines := strings.Split(r.stdout, "\n")
	if lines[0] != "pid=1" || lines[1] != "ctr-host" || lines[2] != "/work-dir" {
		t.Errorf("pid, hostname, cwd: %q", lines[:3])
	}
	if fds := strings.Fields(lines[3]); len(fds) != 4 { // 0 1 2 and ls's own
		t.Errorf("descriptors in the container: %v", fds)
	}
	// Every mount point the container sees is one of its own.
	for _, line := range lines[4:] {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.Contains(line, " - ") {
			continue
		}
		mp := f[4]
		ok := mp == "/" || mp == "/work-dir"
		for _, own := range []string{"/proc", "/dev", "/sys", "/etc/"} {
			ok = ok || strings.HasPrefix(mp, own)
		}
		if !ok {
			t.Errorf("a host mount is visible in the container: %s", line)
		}
	}
	if !strings.Contains(r.stdout, "uid=0(root)") {
		t.Errorf("id: %s", r.stdout)
	}
	if !strings.HasPrefix(r.initExe, "/memfd:crid") {
		t.Errorf("the init runs %q, not the sealed copy of crid", r.initExe)
	}
}

func TestSecurityContextIsApplied(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	r, err := runIn(t, root, `id -u; id -g; id -G; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; touch /x 2>&1; stat -c %t:%T /proc/keys; /bin/sh -c ls 2>&1; echo > /dev/null && echo null-ok`, func(in *generate.Input) {
		sc := secctx(in)
		sc.RunAsUser = &runtime.Int64Value{Value: 33}
		sc.SupplementalGroups = []int64{1234}
		sc.NoNewPrivs = true
		sc.ReadonlyRootfs = true
		sc.MaskedPaths = append(append([]string{}, generate.DefaultMaskedPaths...), "/bin/ls")
		sc.Capabilities = &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	t.Logf("container said:\n%s", r.stdout)
	want := []string{
		"33", "33", "33 1234",
		"CapEff:\t0000000000000000", // a non-root user keeps no effective capabilities at exec
		"CapBnd:\t0000000000000400", // CAP_NET_BIND_SERVICE alone
		"NoNewPrivs:\t1",
		"touch: /x: Read-only file system",
		"1:3",                            // /proc/keys masked by the null device
		"/bin/sh: ls: Permission denied", // /bin/ls masked, the shell is not
		"null-ok",
	}
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for i, w := range want {
		if i >= len(got) || got[i] != w {
			t.Errorf("line %d: %q, want %q", i, at(got, i), w)
		}
	}
}

func at(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return "<missing>"
}

func TestRlimits(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	limits := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 654}, {Type: "RLIMIT_CORE", Soft: 0, Hard: 0}}
	r, err := runSpec(t, root, `ulimit -Sn; ulimit -Hn; ulimit -c`, nil, func(s *specs.Spec) { s.Process.Rlimits = limits })
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	if got := strings.Fields(r.stdout); !slices.Equal(got, []string{"321", "654", "0"}) {
		t.Errorf("limits in the container: %q, want 321 654 0", got)
	}
	_, err = runSpec(t, root, `true`, nil, func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}} })
	if err == nil || !strings.Contains(err.Error(), "RLIMIT_BOGUS") {
		t.Errorf("an unknown limit: %v, want an error naming it", err)
	}
}

func TestExitStatusAndSetupErrors(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	r, err := runIn(t, root, "exit 3", nil)
	if err != nil || r.status.ExitStatus() != 3 {
		t.Fatalf("exit status %d, %v", r.status.ExitStatus(), err)
	}
	_, err = runIn(t, root, "", func(in *generate.Input) { in.Container.Command = []string{"no-such-program"} })
	if err == nil || !strings.Contains(err.Error(), "executable file not found") {
		t.Fatalf("a missing program: %v", err)
	}
	// An image that planted a symlink where /proc goes gets its mount
	// inside the root, not on the host's path.
	os.RemoveAll(filepath.Join(root, "proc"))
	os.Symlink("/etc/evil-proc", filepath.Join(root, "proc"))
	_, err = runIn(t, root, "true", nil)
	if err == nil || !strings.Contains(err.Error(), "symlink to a path missing from the image") {
		t.Fatalf("a /proc symlinked away: %v", err)
	}
	if _, err := os.Stat("/etc/evil-proc"); err == nil {
		t.Fatal("a mount target escaped the root")
	}
	// Pointing at an existing directory, the mount lands inside the root.
	os.MkdirAll(filepath.Join(root, "etc", "evil-proc"), 0o755)
	r, err = runIn(t, root, "cat /etc/evil-proc/self/comm; readlink /proc", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	if r.stdout != "cat\n/etc/evil-proc\n" {
		t.Errorf("proc through an in-root symlink: %q", r.stdout)
	}
}

var _ = specs.Version

func TestSeccomp(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	r, err := runIn(t, root, "grep Seccomp: /proc/self/status", func(in *generate.Input) {
		secctx(in).Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	})
	if err != nil || r.stdout != "Seccomp:\t2\n" {
		t.Fatalf("RuntimeDefault: %q, %v %s", r.stdout, err, r.stderr)
	}
	for _, nnp := range []bool{false, true} {
		r, err = runIn(t, root, "hostname blocked 2>&1; echo code=$?", func(in *generate.Input) {
			dir := t.TempDir()
			prof := filepath.Join(dir, "block-hostname.json")
			os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
			in.SeccompProfileRoot = dir
			sc := secctx(in)
			sc.NoNewPrivs = nnp
			sc.Capabilities = &runtime.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
			in.DaemonCaps = append(append([]string{}, generate.DefaultCapabilities...), "CAP_SYS_ADMIN")
			sc.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: prof}
		})
		if err != nil || !strings.Contains(r.stdout, "Operation not permitted") || !strings.Contains(r.stdout, "code=1") {
			t.Errorf("no_new_privs=%v: a profile blocking sethostname let it through: %q, %v %s", nnp, r.stdout, err, r.stderr)
		}
	}
}

// TestReadOnlyBinds: a read-only bind keeps a host submount under it
// writable (what "ro" has always meant); a recursive read-only one makes
// the submount read-only too.
func TestReadOnlyBinds(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	host := t.TempDir()
	sub := filepath.Join(host, "tmpfs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	for _, tc := range []struct {
		rro  bool
		want string
	}{
		{false, "top:Read-only file system sub:ok"},
		{true, "top:Read-only file system sub:Read-only file system"},
	} {
		r, err := runIn(t, root, `try() { touch "$1" 2>/dev/null && echo ok || echo "Read-only file system"; }; echo "top:$(try /mnt/x) sub:$(try /mnt/tmpfs/x)"`, func(in *generate.Input) {
			in.Container.Mounts = []*runtime.Mount{{ContainerPath: "/mnt", HostPath: host, Readonly: true, RecursiveReadOnly: tc.rro}}
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, r.stderr)
		}
		if got := strings.TrimSpace(r.stdout); got != tc.want {
			t.Errorf("recursive=%v: %q, want %q", tc.rro, got, tc.want)
		}
	}
}

// TestTerminal: a container asking for a terminal gets one from its own
// devpts (so it is /dev/pts/0), as its controlling terminal and stdio,
// owned by the container's user, and the master comes back to Start.
func TestTerminal(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	r, err := runIn(t, root, `tty; stat -c %u /proc/self/fd/0; ls /dev/pts | tr '\n' ' '; echo; [ -t 1 ] && echo stdout-is-tty; cat /proc/self/stat | cut -d' ' -f6,7`, func(in *generate.Input) {
		in.Container.Tty = true
		secctx(in).RunAsUser = &runtime.Int64Value{Value: 33}
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	t.Logf("container said:\n%s", r.stdout)
	got := strings.Split(strings.TrimSpace(strings.ReplaceAll(r.stdout, "\r\n", "\n")), "\n")
	want := []string{"/dev/pts/0", "33", "0 ptmx", "stdout-is-tty"}
	for i, w := range want {
		if i >= len(got) || strings.TrimSpace(got[i]) != w {
			t.Errorf("line %d: %q, want %q", i, at(got, i), w)
		}
	}
	// The session and the terminal (tty_nr of /dev/pts/0: major 136).
	if f := strings.Fields(at(got, 4)); len(f) != 2 || f[1] != strconv.Itoa(136<<8) {
		t.Errorf("session and tty_nr: %q", at(got, 4))
	}
	if !strings.Contains(r.stdout, "\r\n") {
		t.Errorf("output did not go through a terminal (no CR LF): %q", r.stdout)
	}
	// A setup error before the console exists still comes back whole.
	_, err = runIn(t, root, "", func(in *generate.Input) {
		in.Container.Tty = true
		in.Container.Command = []string{"no-such-program"}
	})
	if err == nil || !strings.Contains(err.Error(), "container init: exec: \"no-such-program\": executable file not found") {
		t.Errorf("a missing program with a terminal: %v", err)
	}
}

// podUserns makes what a pod with hostUsers: false has: a user namespace
// mapping 0 to host 1000+ (65536 IDs) owning network, IPC and UTS
// namespaces, held by a process of the test's.
func podUserns(t *testing.T) (pid int, mapping []specs.LinuxIDMapping) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000, Size: 65536}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000, Size: 65536}},
		GidMappingsEnableSetgroups: true,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid, []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 65536}}
}

// TestUserNamespace: a container joins its pod's user namespace and is
// its root, owns its mount and PID namespaces there (so /proc mounts), has
// device nodes bound from the host, and owns an idmapped bind's files.
func TestUserNamespace(t *testing.T) {
	image := catalog.BusyboxRoot(t) // skips, saying why, when not root
	holder, mapping := podUserns(t)
	ns := func(kind string) string { return filepath.Join("/proc", strconv.Itoa(holder), "ns", kind) }
	// As crid does for the rootfs: the image's files, owned by the host's
	// root, seen through an idmapped mount.
	root := t.TempDir()
	tree, err := unix.OpenTree(unix.AT_FDCWD, image, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	userns, err := os.Open(ns("user"))
	if err != nil {
		t.Fatal(err)
	}
	defer userns.Close()
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}); err != nil {
		t.Fatal(err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, root, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		t.Fatal(err)
	}
	unix.Close(tree)
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	vol := t.TempDir()
	r, err := runIn(t, root, `cat /proc/self/uid_map; id -u; echo pid=$$; stat -c %u /vol; touch /vol/made && echo wrote; echo x > /dev/null && stat -c %t:%T /dev/null; grep -c . /proc/self/mountinfo >/dev/null && echo proc-ok`, func(in *generate.Input) {
		in.UserNS, in.UIDMappings, in.GIDMappings = ns("user"), mapping, mapping
		in.NetNS, in.IPCNS, in.UTSNS = ns("net"), ns("ipc"), ns("uts")
		in.Container.Mounts = []*runtime.Mount{{ContainerPath: "/vol", HostPath: vol}}
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	t.Logf("container said:\n%s", r.stdout)
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if f := strings.Fields(at(got, 0)); len(f) != 3 || f[0] != "0" || f[1] != "1000" || f[2] != "65536" {
		t.Errorf("uid_map %q", at(got, 0))
	}
	want := []string{"0", "pid=1", "0", "wrote", "1:3", "proc-ok"}
	for i, w := range want {
		if at(got, i+1) != w {
			t.Errorf("line %d: %q, want %q", i+1, at(got, i+1), w)
		}
	}
	// Through the idmapped bind the container's root is the volume's
	// owner (the host's root; the dir is 0700, so nothing else could
	// write there), and what it writes is owned on disk as the host's
	// root would own it: a volume reads the same with or without a user
	// namespace.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(vol, "made"), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("a file the container's root made is owned by %d:%d on the host (%v), want 0:0", st.Uid, st.Gid, err)
	}
	// The container's namespaces belong to the pod's user namespace.
	if r.status.ExitStatus() != 0 {
		t.Errorf("exit %d", r.status.ExitStatus())
	}
}

// BenchmarkStart measures Start through the exec of a container's
// process (its own mount, PID and UTS namespaces, the default mounts,
// masked paths and devices), the executor's share of StartContainer.
func BenchmarkStart(b *testing.B) {
	root := catalog.BusyboxRoot(b)
	bin, err := reexec.Seal()
	if err != nil {
		b.Fatal(err)
	}
	defer bin.Close()
	in := generate.Input{
		Container: &runtime.ContainerConfig{Command: []string{"/bin/true"}},
		Sandbox:   &runtime.PodSandboxConfig{},
		Image:     &v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin"}}},
		Rootfs:    root, Hostname: "bench", DaemonCaps: generate.DefaultCapabilities,
	}
	spec, err := generate.Spec(in)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := Start(bin, spec, Stdio{}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Wait()
		b.StartTimer()
	}
}

// TestBornInItsCgroup: with CgroupDir the init is cloned into the cgroup
// (CLONE_INTO_CGROUP) with its namespaces, and Place is not called. Run on
// any cgroup2 hierarchy: this hybrid host's unified one, a v2 host's root.
// initCgroups runs a container that prints its cgroups, started with
// opts, and says whether Place was called.
func initCgroups(t *testing.T, opts Options) (out string, placed bool, err error) {
	t.Helper()
	root := catalog.BusyboxRoot(t)
	bin, err := reexec.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	spec, err := generate.Spec(generate.Input{
		Container: &runtime.ContainerConfig{Command: []string{"/bin/sh", "-c", "cat /proc/self/cgroup"}},
		Sandbox:   &runtime.PodSandboxConfig{},
		Image:     &v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin"}}},
		Rootfs:    root, Hostname: "cgroups", DaemonCaps: generate.DefaultCapabilities,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Place = func(int) error { placed = true; return nil }
	var buf bytes.Buffer
	p, err := Start(bin, spec, Stdio{Stdout: &buf}, opts)
	if err != nil {
		return "", placed, err
	}
	p.Wait()
	return buf.String(), placed, nil
}

func TestBornInItsCgroup(t *testing.T) {
	base := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
		base = "/sys/fs/cgroup"
	}
	if _, err := os.Stat(filepath.Join(base, "cgroup.subtree_control")); err != nil {
		t.Skipf("no cgroup2 hierarchy here: %v", err)
	}
	name := fmt.Sprintf("crid-test-born-%d", os.Getpid())
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, placed, err := initCgroups(t, Options{CgroupDir: f})
	if err != nil {
		t.Fatal(err)
	}
	if placed {
		t.Error("Place was called though the init was born in its cgroup")
	}
	if !strings.Contains(out, "0::/"+name+"\n") {
		t.Errorf("the container's cgroups:\n%s\nwant 0::/%s", out, name)
	}
}

func TestStartLeavesHostMountsAlone(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	shared := t.TempDir()
	sub := filepath.Join(shared, "sub")
	os.Mkdir(sub, 0o755)
	if err := unix.Mount(shared, shared, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(shared, unix.MNT_DETACH) })
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	vol := t.TempDir()
	r, err := runIn(t, root, "true", func(in *generate.Input) {
		in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
		secctx(in).Privileged = true
		in.Container.Mounts = []*runtime.Mount{{ContainerPath: "/vol", HostPath: vol, Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stderr)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(sub, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("the host's tmpfs at %s is gone after a container started (fs type %#x, %v)", sub, st.Type, err)
	}
}

func TestPutsItselfInItsCgroup(t *testing.T) {
	name := fmt.Sprintf("crid-test-join-%d", os.Getpid())
	var join []string
	for _, ctl := range []string{"memory", "pids"} {
		base := filepath.Join("/sys/fs/cgroup", ctl)
		if _, err := os.Stat(filepath.Join(base, "tasks")); err != nil {
			t.Skipf("no cgroup v1 %s hierarchy here: %v", ctl, err)
		}
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(dir)
		join = append(join, filepath.Join(dir, "tasks"))
	}
	out, placed, err := initCgroups(t, Options{CgroupJoin: join})
	if err != nil {
		t.Fatal(err)
	}
	if placed {
		t.Error("Place was called though the init put itself in its cgroup")
	}
	for _, ctl := range []string{"memory", "pids"} {
		if !strings.Contains(out, ":"+ctl+":/"+name+"\n") {
			t.Errorf("the container's cgroups:\n%s\nwant %s:/%s", out, ctl, name)
		}
	}
	// A cgroup that is not there fails the start, saying which step.
	_, _, err = initCgroups(t, Options{CgroupJoin: []string{"/sys/fs/cgroup/memory/" + name + "-missing/tasks"}})
	if err == nil || !strings.Contains(err.Error(), "join the container's cgroup") {
		t.Errorf("joining a missing cgroup: %v", err)
	}
}

// TestContainerSeesItsCgroups: /sys/fs/cgroup shows the container's own
// cgroups, read-only (rw when privileged), named as on the host, as runc
// shows them: what runtimes read their limits from. On this v1 or hybrid
// host, one bind per hierarchy; the cgroup the test runs in is the init's.
func TestContainerSeesItsCgroups(t *testing.T) {
	root := catalog.BusyboxRoot(t)
	own, err := ownCgroupsOf("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	var unified bool
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		unified = true
	}
	script := `ls /sys/fs/cgroup | tr '\n' ' '; echo; touch /sys/fs/cgroup/x 2>/dev/null && echo tmpfs-writable || echo tmpfs-ro; ` +
		`grep ' /sys/fs/cgroup' /proc/self/mountinfo | wc -l; grep ' /sys/fs/cgroup' /proc/self/mountinfo | grep -c ' - cgroup2 '`
	for _, privileged := range []bool{false, true} {
		r, err := runIn(t, root, script, func(in *generate.Input) {
			if privileged {
				in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
				secctx(in).Privileged = true
			}
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		t.Logf("privileged %v: %q", privileged, lines)
		if unified {
			continue // the qemu tests check a cgroup2 host
		}
		if len(lines) != 4 {
			t.Fatalf("container said %q", r.stdout)
		}
		// No cgroup2 mount: on a hybrid host programs would take it for
		// a v2 container (the kubelet's e2e specs run mount -t cgroup2).
		if lines[3] != "0" {
			t.Errorf("privileged %v: %s cgroup2 mounts under /sys/fs/cgroup of a v1 host", privileged, lines[3])
		}
		for _, h := range own {
			if !strings.Contains(" "+lines[0], " "+h.name+" ") {
				t.Errorf("privileged %v: /sys/fs/cgroup lacks %s: %q", privileged, h.name, lines[0])
			}
		}
		if want := map[bool]string{false: "tmpfs-ro", true: "tmpfs-writable"}[privileged]; lines[1] != want {
			t.Errorf("privileged %v: /sys/fs/cgroup is %s, want %s", privileged, lines[1], want)
		}
		if want := strconv.Itoa(len(own) + 1); lines[2] != want {
			t.Errorf("privileged %v: %s mounts at and under /sys/fs/cgroup, want %s", privileged, lines[2], want)
		}
	}
	// What the container reads is its cgroup's: memory.limit_in_bytes of
	// the test's own memory cgroup, and writes are refused unless
	// privileged.
	for _, h := range own {
		if h.name != "memory" {
			continue
		}
		want, err := os.ReadFile(h.source + "/memory.limit_in_bytes")
		if err != nil {
			t.Fatal(err)
		}
		r, err := runIn(t, root, `cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo 1 > /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null && echo wrote || echo refused`, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, r.stderr)
		}
		if got := strings.Fields(r.stdout); len(got) != 2 || got[0] != strings.TrimSpace(string(want)) || got[1] != "refused" {
			t.Errorf("the container read %q, want its cgroup's limit %s, and a refused write", r.stdout, want)
		}
	}
}

// ownCgroupsOf is ownCgroups of a process, read from the host's /proc.
func ownCgroupsOf(proc string) ([]cgroupHierarchy, error) {
	mi, err := os.ReadFile(proc + "/mountinfo")
	if err != nil {
		return nil, err
	}
	cg, err := os.ReadFile(proc + "/cgroup")
	if err != nil {
		return nil, err
	}
	return parseOwnCgroups(mi, cg)
}
