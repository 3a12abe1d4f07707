package executor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/oci/caps"
	"github.com/crid-dev/crid/pkg/oci/seccomp"
)

// Init is a container's init: crid's binary as `crid init`, started by
// Start in the container's namespaces. It sets the container up and execs
// its process, or reports why it could not. It never returns on success.
func Init() int {
	// Capabilities, no_new_privs and the exec are per thread: everything
	// from here runs on the main thread, which execs.
	runtime.LockOSThread()
	unix.CloseOnExec(3)
	sync := os.NewFile(3, "init-sync")
	fail := func(err error) int {
		sync.Write(initFailure(err))
		return 1
	}
	line, err := bufio.NewReader(sync).ReadBytes('\n')
	if err != nil {
		return fail(fmt.Errorf("read spec: %w", err))
	}
	var cfg initConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fail(fmt.Errorf("decode spec: %v", err))
	}
	if cfg.Spec == nil && cfg.Bundle != "" {
		if err := loadBundle(&cfg); err != nil {
			return fail(err)
		}
	}
	if cfg.Spec == nil {
		return fail(errors.New("decode spec: no spec"))
	}
	spec := *cfg.Spec
	argv0, err := setup(&cfg, sync)
	if err != nil {
		return fail(err)
	}
	// sync is close-on-exec: a successful exec is the EOF Start waits for.
	err = unix.Exec(argv0, spec.Process.Args, spec.Process.Env)
	return fail(fmt.Errorf("exec %s: %w", spec.Process.Args[0], err))
}

// setup makes the init the container's, step by step as the kernel sees
// it, and returns the path of the program to exec: the cgroup namespace,
// the mounts' propagation, the root filesystem with its mounts and
// devices, the pivot into it, masked and read-only paths, the working dir
// and a read-only root, the hostname, then the process's own state
// (console, rlimits, descriptors, seccomp, privileges).
func setup(cfg *initConfig, sync *os.File) (string, error) {
	spec := cfg.Spec
	if err := enterCgroupNamespace(spec); err != nil {
		return "", err
	}
	prop, err := setPropagation(spec)
	if err != nil {
		return "", err
	}
	if err := prepareRootfs(cfg, prop); err != nil {
		return "", err
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(root)
	if err := maskPaths(root, spec.Linux.MaskedPaths); err != nil {
		return "", err
	}
	for _, p := range spec.Linux.ReadonlyPaths {
		if err := readonlyPath(root, p); err != nil {
			return "", err
		}
	}
	if err := finalizeRootfs(root, spec); err != nil {
		return "", err
	}
	if spec.Hostname != "" && newNamespace(spec, specs.UTSNamespace) {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return "", fmt.Errorf("set hostname: %w", err)
		}
	}
	return prepareExec(spec.Process, spec.Linux.Seccomp, cfg.SeccompProgram, sync)
}

// enterCgroupNamespace makes the container's cgroup namespace. Start put
// the init in the container's cgroup before sending the spec: a cgroup
// namespace made now is rooted there, so the container sees its own
// cgroup as /. It belongs to this thread, which execs.
func enterCgroupNamespace(spec *specs.Spec) error {
	if !newNamespace(spec, specs.CgroupNamespace) {
		return nil
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("new cgroup namespace: %w", err)
	}
	return nil
}

// setPropagation sets the propagation of the copy of the host's mounts:
// private unless a bind mount asks to hear from the host (rslave) or to
// talk back (rshared); either way the root itself is made private (in
// prepareRootfs), so nothing crid mounts for the container reaches the
// host's mount table.
func setPropagation(spec *specs.Spec) (uintptr, error) {
	prop := uintptr(unix.MS_PRIVATE)
	switch spec.Linux.RootfsPropagation {
	case "rslave", "slave":
		prop = unix.MS_SLAVE
	case "rshared", "shared":
		prop = unix.MS_SHARED
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|prop, ""); err != nil {
		return 0, fmt.Errorf("set mount propagation: %w", err)
	}
	// pivot_root refuses a new root whose parent mount is shared, and a
	// current root that is: with rshared asked for, make the mounts on
	// the way private again (non-recursively: the bind sources keep their
	// peers).
	if prop == unix.MS_SHARED {
		rootfs := spec.Root.Path
		for _, p := range []string{"/", mountPointOf(filepath.Dir(rootfs)), mountPointOf(rootfs)} {
			if err := unix.Mount("", p, "", unix.MS_PRIVATE, ""); err != nil {
				return 0, fmt.Errorf("make %s private for pivot_root: %w", p, err)
			}
		}
	}
	return prop, nil
}

// prepareRootfs attaches the root filesystem, mounts the spec's mounts
// and devices in it, and pivots into it. It consumes every descriptor of
// the host's the init holds: the root, the old root and the mount trees.
func prepareRootfs(cfg *initConfig, prop uintptr) error {
	spec := cfg.Spec
	// The rootfs comes as a detached clone Start made, never by path: in
	// a user namespace the container's root may not search the host's
	// directories above it. It is attached over this namespace's /, the
	// one place sure to be reachable; its root is where every mount below
	// is resolved, and what pivot_root enters.
	root := cfg.RootFD
	unix.CloseOnExec(root)
	// The old root, held before the rootfs covers it: pivot_root puts it
	// under the new one, where it is detached. pivotRoot closes it, so no
	// descriptor of the host's outlives the pivot (CVE-2024-21626).
	oldRoot, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the old root: %w", err)
	}
	fail := func(err error) error {
		unix.Close(oldRoot)
		unix.Close(root)
		for _, tree := range cfg.MountFDs {
			unix.Close(tree)
		}
		return err
	}
	if err := unix.MoveMount(root, "", unix.AT_FDCWD, "/", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fail(fmt.Errorf("attach rootfs %s: %w", spec.Root.Path, err))
	}
	if err := unix.MountSetattr(root, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Propagation: unix.MS_PRIVATE}); err != nil {
		return fail(fmt.Errorf("make rootfs private: %w", err))
	}
	for i, m := range spec.Mounts {
		tree, ok := cfg.MountFDs[i]
		if !ok {
			tree = -1
		}
		var err error
		if m.Type == "cgroup" {
			err = mountCgroups(root, oldRoot, m, cfg.CgroupMounts)
		} else {
			err = mountInRoot(root, m, tree)
		}
		if ok {
			// The tree the monitor cloned from the host: once attached
			// (or refused) it is not held.
			unix.Close(tree)
			delete(cfg.MountFDs, i)
		}
		if err != nil {
			return fail(err)
		}
		if m.Destination == "/dev" {
			if err := makeDevices(root, spec.Linux.Devices, inUserNamespace(spec)); err != nil {
				return fail(err)
			}
		}
	}
	err = pivotRoot(root, oldRoot)
	unix.Close(root)
	return err
}

// maskPaths covers each path with the container's /dev/null (a file) or
// an empty read-only tmpfs (a directory).
func maskPaths(root int, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	devNull, err := openDevNull(root)
	if err != nil {
		return err
	}
	defer unix.Close(devNull)
	for _, p := range paths {
		if err := maskPath(root, devNull, p); err != nil {
			return err
		}
	}
	return nil
}

// finalizeRootfs enters the working dir, made if missing, then makes the
// root read-only when the spec says so: the dir is made before the root
// may turn read-only, and by now the init holds no descriptor of the
// host's (the old root went in pivotRoot, the mount trees once attached).
func finalizeRootfs(root int, spec *specs.Spec) error {
	if err := enterWorkingDir(root, spec.Process.Cwd, true); err != nil {
		return err
	}
	if spec.Root.Readonly {
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make the root read-only: %w", err)
		}
	}
	return nil
}

// prepareExec readies the process itself and returns the program to
// exec: its path looked up in the container's PATH, its console sent to
// the monitor, its rlimits, every descriptor above stdio close-on-exec,
// its seccomp filter and its privileges. A terminal's master goes to
// Start over sync as soon as it exists, before a seccomp profile could
// forbid sending it.
func prepareExec(p *specs.Process, sc *specs.LinuxSeccomp, prog []byte, sync *os.File) (string, error) {
	argv0, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return "", err
	}
	if p.Terminal {
		master, err := openConsole(p)
		if err != nil {
			return "", err
		}
		err = sendConsole(sync, master)
		unix.Close(master)
		if err != nil {
			return "", fmt.Errorf("send the console: %w", err)
		}
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return "", err
	}
	// No descriptor of crid's may reach the container (CVE-2024-21626):
	// everything above stdio closes at exec.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return "", fmt.Errorf("close inherited descriptors: %w", err)
	}
	// Seccomp comes last.
	if err := confine(p, sc, prog); err != nil {
		return "", err
	}
	return argv0, nil
}

// confine drops p's privileges and loads its seccomp filter: the
// compiled program when the starter sent one, else sc compiled here.
// Without no_new_privs the kernel takes a filter only from a thread with
// CAP_SYS_ADMIN, so it is loaded before the privileges go (the profile
// must allow setuid and capset, as the default does); with it, after.
func confine(p *specs.Process, sc *specs.LinuxSeccomp, prog []byte) error {
	load := func(nnp bool) error {
		if prog != nil {
			return seccomp.LoadProgram(prog, nnp)
		}
		if sc != nil {
			return seccomp.Load(sc, nnp)
		}
		return nil
	}
	if !p.NoNewPrivileges {
		if err := load(false); err != nil {
			return err
		}
	}
	if err := dropPrivileges(p); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		return load(true)
	}
	return nil
}

func inUserNamespace(spec *specs.Spec) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			return true
		}
	}
	return false
}

func newNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path == ""
		}
	}
	return false
}

// pivotRoot makes rootfs (the root of a mount) the root, with the old root stacked on the same
// directory and detached, so not a path of the host stays reachable. It
// closes oldRoot whatever happens: the last descriptor of the host's file
// system must not survive the pivot (CVE-2024-21626).
func pivotRoot(rootfs, oldRoot int) error {
	defer unix.Close(oldRoot)
	if err := unix.Fchdir(rootfs); err != nil {
		return fmt.Errorf("chdir rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w (shared mounts: %s)", err, sharedMounts())
	}
	// The old root still holds this namespace's copies of the host's
	// mounts, shared ones among them when a bind asked for rshared: an
	// unmount of those would propagate to their peers on the host and
	// take the host's mounts away (a pod with a Bidirectional mount
	// starting unmounted another pod's mounts). As slaves they hear from
	// the host but tell it nothing. "." after pivot_root is the new root
	// (a path's last "." does not cross the old root stacked on it):
	// work from the old root's own descriptor.
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("chdir the old root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make the old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	return unix.Chdir("/")
}

// makeDevices fills the container's /dev: the standard nodes, the spec's
// devices, and the usual links. In a user namespace no device node can be
// made (and a file system mounted there ignores them): the host's nodes
// are bound instead, as runc does.
func makeDevices(root int, extra []specs.LinuxDevice, userns bool) error {
	devFd, err := resolveIn(root, "/dev", false)
	if err != nil {
		return err
	}
	defer unix.Close(devFd)
	dev, err := reopenDir(devFd)
	if err != nil {
		return err
	}
	defer unix.Close(dev)
	std := []specs.LinuxDevice{
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}, {Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
		{Path: "/dev/full", Type: "c", Major: 1, Minor: 7}, {Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
		{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9}, {Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
	}
	for _, d := range append(std, extra...) {
		name := strings.TrimPrefix(d.Path, "/dev/")
		if strings.Contains(name, "/") || name == "" {
			// Devices in subdirectories of /dev are made by path in the root.
			pfd, err := resolveIn(root, path.Dir(d.Path), false)
			if err != nil {
				return err
			}
			pdir, err := reopenDir(pfd)
			unix.Close(pfd)
			if err != nil {
				return err
			}
			err = makeDevice(pdir, path.Base(d.Path), d, userns)
			unix.Close(pdir)
			if err != nil {
				return err
			}
			continue
		}
		if err := makeDevice(dev, name, d, userns); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"} {
		if err := unix.Symlinkat(target, dev, name); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("/dev/%s: %w", name, err)
		}
	}
	return nil
}

func makeDevice(dir int, name string, d specs.LinuxDevice, userns bool) error {
	if userns {
		return bindDevice(dir, name, d)
	}
	return mknod(dir, name, d)
}

// bindDevice binds the host's node at the device's path, which must be
// the device the spec names.
func bindDevice(dir int, name string, d specs.LinuxDevice) error {
	var st unix.Stat_t
	if err := unix.Stat(d.Path, &st); err != nil {
		return fmt.Errorf("device %s: the host's node to bind in a user namespace: %w", d.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR && st.Mode&unix.S_IFMT != unix.S_IFBLK || unix.Major(st.Rdev) != uint32(d.Major) || unix.Minor(st.Rdev) != uint32(d.Minor) {
		return fmt.Errorf("device %s: the host's node there is not %d:%d, and in a user namespace devices are bound from the host's path", d.Path, d.Major, d.Minor)
	}
	f, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("device %s: mount point: %w", d.Path, err)
	}
	unix.Close(f)
	target, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	tree, err := unix.OpenTree(unix.AT_FDCWD, d.Path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("device %s: bind the host's node: %w", d.Path, err)
	}
	defer unix.Close(tree)
	if err := attach(tree, target); err != nil {
		return fmt.Errorf("device %s: bind the host's node: %w", d.Path, err)
	}
	return nil
}

func mknod(dir int, name string, d specs.LinuxDevice) error {
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(*d.FileMode) & 0o7777
	}
	switch d.Type {
	case "c", "u":
		mode |= unix.S_IFCHR
	case "b":
		mode |= unix.S_IFBLK
	case "p":
		mode |= unix.S_IFIFO
	default:
		return fmt.Errorf("device %s: type %q", d.Path, d.Type)
	}
	unix.Unlinkat(dir, name, 0)
	if err := unix.Mknodat(dir, name, mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return fmt.Errorf("make device %s: %w", d.Path, err)
	}
	if err := unix.Fchmodat(dir, name, mode&0o7777, 0); err != nil {
		return err
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	return unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// openDevNull opens the container's /dev/null and checks it is the null
// device itself.
func openDevNull(root int) (int, error) {
	fd, err := unix.Openat2(root, "/dev/null", &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return -1, fmt.Errorf("open /dev/null: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		unix.Close(fd)
		return -1, errors.New("/dev/null is not the null device (1:3): refusing to mask with it")
	}
	return fd, nil
}

// lookPath finds the program in the container's PATH, after pivot_root.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", badSpec(fmt.Errorf("exec: %q: executable file not found in $PATH", file))
}

var capNumbers = func() map[string]uint {
	m := map[string]uint{}
	for i, n := range caps.Names {
		m[n] = uint(i)
	}
	return m
}()

func capMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		c, ok := capNumbers[n]
		if !ok {
			return 0, fmt.Errorf("unknown capability %s", n)
		}
		m |= 1 << c
	}
	return m, nil
}

// dropPrivileges switches to the process's user and groups, keeping
// exactly the capabilities the spec gives, and sets no_new_privs.
func dropPrivileges(p *specs.Process) error {
	caps := p.Capabilities
	if caps == nil {
		caps = &specs.LinuxCapabilities{}
	}
	bounding, err := capMask(caps.Bounding)
	if err != nil {
		return err
	}
	effective, err := capMask(caps.Effective)
	if err != nil {
		return err
	}
	permitted, err := capMask(caps.Permitted)
	if err != nil {
		return err
	}
	inheritable, err := capMask(caps.Inheritable)
	if err != nil {
		return err
	}
	lastCap := 40
	if data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			lastCap = n
		}
	}
	for c := 0; c <= lastCap; c++ {
		if bounding&(1<<uint(c)) == 0 {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	groups := make([]int, len(p.User.AdditionalGids))
	for i, g := range p.User.AdditionalGids {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := syscall.Setgid(int(p.User.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", p.User.GID, err)
	}
	if err := syscall.Setuid(int(p.User.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", p.User.UID, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(effective), Permitted: uint32(permitted), Inheritable: uint32(inheritable)},
		{Effective: uint32(effective >> 32), Permitted: uint32(permitted >> 32), Inheritable: uint32(inheritable >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	return nil
}

// mountPointOf is the mount point of the mount that holds path.
func mountPointOf(path string) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "/"
	}
	best := "/"
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	return best
}

// sharedMounts lists the shared mounts, to explain a refused pivot_root.
func sharedMounts() string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && strings.Contains(line, " shared:") {
			out = append(out, f[4])
		}
	}
	return strings.Join(out, " ")
}
