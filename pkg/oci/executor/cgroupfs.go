package executor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountCgroups makes the container's /sys/fs/cgroup (the spec's "cgroup"
// mount) show the container's own cgroups, as runc does: what the JVM, Go's
// and .NET's runtimes read to size their heaps and thread pools, and what
// the kubelet's resize conformance specs read back.
//
//   - On a cgroup v2 host the init is in a cgroup namespace of its own,
//     rooted at its cgroup (it was born there, CLONE_INTO_CGROUP): a fresh
//     cgroup2 mount shows that cgroup as its root.
//   - On a v1 or hybrid host there is no such namespace: a tmpfs holds, for
//     each of the host's v1 hierarchies under /sys/fs/cgroup, a bind of the
//     init's own cgroup in it (found from /proc/self/cgroup and the host's
//     mountinfo, read through oldRoot, the host's root), named as on the
//     host (cpu,cpuacct, memory, systemd...), with the host's symlinks for
//     co-mounted controllers (cpu -> cpu,cpuacct). A hybrid host's unified
//     hierarchy is left out, as runc leaves it: a cgroup2 mount under
//     /sys/fs/cgroup makes programs (the kubelet's e2e suite among them,
//     `mount -t cgroup2`) take the container for a cgroup v2 one.
//
// Read-only unless the spec says rw (privileged containers).
func mountCgroups(root, oldRoot int, m specs.Mount, hostMounts string) error {
	o := parseOptions(m.Options)
	target, err := resolveIn(root, m.Destination, false)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	// The host's /sys/fs/cgroup, seen through the old root, says which.
	host, err := unix.Openat(oldRoot, "sys/fs/cgroup", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("the host's /sys/fs/cgroup: %w", err)
	}
	var st unix.Statfs_t
	err = unix.Fstatfs(host, &st)
	unix.Close(host)
	if err != nil {
		return fmt.Errorf("the host's /sys/fs/cgroup: %w", err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		tree, err := fsMount("cgroup2", "cgroup2", o)
		if err != nil {
			return fmt.Errorf("mount cgroup2 at %s: %w", m.Destination, err)
		}
		defer unix.Close(tree)
		return attach(tree, target)
	}

	hierarchies, err := ownCgroups(oldRoot, hostMounts)
	if err != nil {
		return err
	}
	tmp, err := fsMount("tmpfs", "tmpfs", mountOptions{attr: o.attr &^ unix.MOUNT_ATTR_RDONLY, params: []string{"mode=755", "size=64k"}})
	if err != nil {
		return fmt.Errorf("mount the tmpfs of %s: %w", m.Destination, err)
	}
	defer unix.Close(tmp)
	if err := attach(tmp, target); err != nil {
		return fmt.Errorf("attach the tmpfs of %s: %w", m.Destination, err)
	}
	// The tmpfs's root (the mount's descriptor, not the mount point's,
	// which is the directory under it), to create entries in.
	dir, err := unix.Openat(tmp, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	made := map[string]bool{}
	for _, h := range hierarchies {
		if err := unix.Mkdirat(dir, h.name, 0o755); err != nil {
			return fmt.Errorf("cgroup mount point %s: %w", h.name, err)
		}
		made[h.name] = true
		src, err := unix.Openat2(oldRoot, strings.TrimPrefix(h.source, "/"), &unix.OpenHow{
			Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			return fmt.Errorf("the container's cgroup %s: %w", h.source, err)
		}
		tree, err := unix.OpenTree(src, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
		unix.Close(src)
		if err != nil {
			return fmt.Errorf("clone the container's cgroup %s: %w", h.source, err)
		}
		at := &unix.MountAttr{Attr_set: o.attr | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, at); err != nil {
			unix.Close(tree)
			return fmt.Errorf("set attributes of %s: %w", h.source, err)
		}
		mp, err := unix.Openat(dir, h.name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(tree)
			return err
		}
		err = attach(tree, mp)
		unix.Close(mp)
		unix.Close(tree)
		if err != nil {
			return fmt.Errorf("attach %s at %s/%s: %w", h.source, m.Destination, h.name, err)
		}
	}
	for _, h := range hierarchies {
		for _, c := range strings.Split(h.name, ",") {
			if c != h.name && !made[c] {
				if err := unix.Symlinkat(h.name, dir, c); err != nil {
					return fmt.Errorf("cgroup link %s: %w", c, err)
				}
				made[c] = true
			}
		}
	}
	if o.attr&unix.MOUNT_ATTR_RDONLY != 0 {
		if err := unix.MountSetattr(tmp, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("make %s read-only: %w", m.Destination, err)
		}
	}
	return nil
}

// cgroupHierarchy is one of the host's cgroup mounts under /sys/fs/cgroup
// and the init's cgroup in it.
type cgroupHierarchy struct {
	name   string // the mount point's name under /sys/fs/cgroup
	source string // the init's cgroup directory, on the host
}

// ownCgroups reads the host's cgroup mounts and the init's cgroups, through
// the host's root (the init's own /proc is the host's until the container's
// is mounted).
func ownCgroups(oldRoot int, hostMounts string) ([]cgroupHierarchy, error) {
	read := func(p string) ([]byte, error) {
		fd, err := unix.Openat(oldRoot, p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), p)
		defer f.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(f)
		return b.Bytes(), err
	}
	// The host's cgroup mounts as crid read them at its start, when the
	// monitor passed them on: the whole mountinfo costs the kernel ~33 µs
	// a mount to write (cgroups.Mounts).
	mountinfo := []byte(hostMounts)
	if hostMounts == "" {
		var err error
		if mountinfo, err = read("proc/self/mountinfo"); err != nil {
			return nil, fmt.Errorf("read the host's mountinfo: %w", err)
		}
	}
	cgroup, err := read("proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read the init's cgroups: %w", err)
	}
	return parseOwnCgroups(mountinfo, cgroup)
}

// parseOwnCgroups matches the cgroup mounts of mountinfo directly under
// /sys/fs/cgroup with the process's cgroup in each (/proc/PID/cgroup).
func parseOwnCgroups(mountinfo, cgroup []byte) ([]cgroupHierarchy, error) {
	// "4:cpu,cpuacct:/kubepods/pod1/c1", "1:name=systemd:/...", "0::/..."
	paths := map[string]string{}
	for _, line := range strings.Split(string(cgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			paths[parts[1]] = parts[2]
		}
	}
	var out []cgroupHierarchy
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 >= len(fields) {
			continue
		}
		mountRoot, mountPoint, fstype, super := fields[3], fields[4], fields[sep+1], fields[sep+3]
		if path.Dir(mountPoint) != "/sys/fs/cgroup" {
			continue
		}
		var key string
		switch fstype {
		case "cgroup":
			var controllers []string
			for _, opt := range strings.Split(super, ",") {
				switch {
				case strings.HasPrefix(opt, "name="):
					controllers = append(controllers, opt)
				case opt == "rw" || opt == "ro" || strings.Contains(opt, "="):
				default:
					if knownController(opt) {
						controllers = append(controllers, opt)
					}
				}
			}
			key = strings.Join(controllers, ",")
		default:
			continue
		}
		p, ok := paths[key]
		if !ok {
			// The kernel lists controllers in /proc/self/cgroup in its own
			// order; find the line with the same set.
			for k, v := range paths {
				if sameSet(k, key) {
					p, ok = v, true
					break
				}
			}
		}
		if !ok {
			continue
		}
		rel := strings.TrimPrefix(path.Clean(p), path.Clean(mountRoot))
		if mountRoot != "/" && !strings.HasPrefix(path.Clean(p)+"/", path.Clean(mountRoot)+"/") {
			continue // the process's cgroup is outside what this mount shows
		}
		out = append(out, cgroupHierarchy{name: path.Base(mountPoint), source: path.Join(mountPoint, rel)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchy of the init's under the host's /sys/fs/cgroup")
	}
	return out, nil
}

func sameSet(a, b string) bool {
	as, bs := strings.Split(a, ","), strings.Split(b, ",")
	if len(as) != len(bs) {
		return false
	}
	for _, x := range as {
		found := false
		for _, y := range bs {
			if x == y {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// knownController tells a v1 controller from the other options of a cgroup
// mount (noprefix, clone_children, xattr...).
func knownController(s string) bool {
	switch s {
	case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio",
		"perf_event", "hugetlb", "pids", "rdma", "misc", "debug":
		return true
	}
	return false
}
