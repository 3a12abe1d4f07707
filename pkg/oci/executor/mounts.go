package executor

import (
	"errors"
	"fmt"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Every mount target inside the root is resolved with openat2
// RESOLVE_IN_ROOT, so a symlink the image planted (/proc -> /host/etc)
// resolves inside the root, and the mount is attached to the file
// descriptor that was opened, never to a path the container could have
// swapped between the check and the mount (the CVE-2025-31133/52565/52881
// class of races against runc).

// mountOptions splits spec options into mount attributes, propagation,
// and the file system's own parameters.
type mountOptions struct {
	attr        uint64 // MOUNT_ATTR_* but the access-time mode
	attrAll     bool   // attr applies to every mount of a cloned tree (rro)
	atime       uint64 // MOUNT_ATTR_RELATIME, _NOATIME or _STRICTATIME
	setAtime    bool
	propagation uint64 // MS_PRIVATE, MS_SLAVE, MS_SHARED
	recursive   bool
	params      []string // key=value or flag, for fsconfig
}

func parseOptions(opts []string) mountOptions {
	var o mountOptions
	for _, opt := range opts {
		switch opt {
		case "ro":
			o.attr |= unix.MOUNT_ATTR_RDONLY
		case "rro":
			// Recursive read-only, as runc spells it: every submount of
			// the bind is read-only too.
			o.attr |= unix.MOUNT_ATTR_RDONLY
			o.attrAll = true
		case "rw", "bind", "suid", "dev", "exec":
		case "rbind":
			o.recursive = true
		case "nosuid":
			o.attr |= unix.MOUNT_ATTR_NOSUID
		case "nodev":
			o.attr |= unix.MOUNT_ATTR_NODEV
		case "noexec":
			o.attr |= unix.MOUNT_ATTR_NOEXEC
		case "relatime":
			o.atime, o.setAtime = unix.MOUNT_ATTR_RELATIME, true
		case "strictatime":
			o.atime, o.setAtime = unix.MOUNT_ATTR_STRICTATIME, true
		case "noatime":
			o.atime, o.setAtime = unix.MOUNT_ATTR_NOATIME, true
		case "private", "rprivate":
			o.propagation = unix.MS_PRIVATE
		case "slave", "rslave":
			o.propagation = unix.MS_SLAVE
		case "shared", "rshared":
			o.propagation = unix.MS_SHARED
		default:
			o.params = append(o.params, opt)
		}
	}
	return o
}

// resolveIn opens path inside the root, making it (a directory, or an
// empty file when file is set) and its parents when missing.
func resolveIn(root int, p string, file bool) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(root, p, how)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("resolve %s in the root: %w", p, err)
	}
	parent, base := path.Split(path.Clean("/" + p))
	if base == "" {
		return -1, fmt.Errorf("resolve %s in the root: %w", p, err)
	}
	pfd, err := resolveIn(root, parent, false)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	dfd, err := reopenDir(pfd)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	if file {
		f, err := unix.Openat(dfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("create mount point %s: %w", p, err)
		}
		if err == nil {
			unix.Close(f)
		}
	} else if err := unix.Mkdirat(dfd, base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create mount point %s: %w", p, err)
	}
	// Only a dangling symlink makes a path both missing and existing.
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return -1, fmt.Errorf("mount point %s is a symlink to a path missing from the image: refused", p)
	}
	return unix.Openat2(dfd, base, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
}

// sameFile tells whether two descriptors name the same file.
func sameFile(a, b int) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Fstat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// reopenDir turns an O_PATH directory fd into one that *at calls accept
// for creating entries, and checks it is a directory.
func reopenDir(fd int) (int, error) {
	return unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// attach moves a detached mount onto the target fd.
func attach(tree, target int) error {
	return unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// mountInRoot makes one spec mount inside the root. tree, when not -1,
// is the bind's source already prepared by Start (an idmapped bind, which
// only the host's root may make): it is attached as it is.
func mountInRoot(root int, m specs.Mount, tree int) error {
	o := parseOptions(m.Options)
	isBind := isBindMount(m, o)
	file := false
	if tree >= 0 {
		var st unix.Stat_t
		if err := unix.Fstat(tree, &st); err != nil {
			return fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		file = st.Mode&unix.S_IFMT != unix.S_IFDIR
	} else if isBind {
		src, err := openSource(m.Source)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		err = unix.Fstat(src, &st)
		unix.Close(src)
		if err != nil {
			return fmt.Errorf("bind source %s: %w", m.Source, err)
		}
		file = st.Mode&unix.S_IFMT != unix.S_IFDIR
	}
	target, err := resolveIn(root, m.Destination, file)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	// A destination of "/..", or a symlink of the image's pointing at
	// "/", resolves to the root itself: a mount there would replace the
	// container's whole root with the source.
	if same, err := sameFile(root, target); err != nil || same {
		if err == nil {
			err = errors.New("it resolves to the container's root")
		}
		return badSpec(fmt.Errorf("mount at %s: %w: refused", m.Destination, err))
	}

	switch {
	case tree >= 0:
	case isBind:
		if tree, err = bindTree(m, -1); err != nil {
			return err
		}
		defer unix.Close(tree)
	default:
		if tree, err = fsMount(m.Type, m.Source, o); err != nil {
			return fmt.Errorf("mount %s at %s: %w", m.Type, m.Destination, err)
		}
		defer unix.Close(tree)
	}
	if err := attach(tree, target); err != nil {
		return fmt.Errorf("attach %s at %s: %w", m.Source, m.Destination, err)
	}
	return nil
}

func isBindMount(m specs.Mount, o mountOptions) bool {
	return m.Type == "bind" || o.recursive || contains(m.Options, "bind")
}

// openSource opens a bind mount's source on the host without following a
// symlink anywhere in its path: the spec holds the source's real path,
// resolved at CreateContainer, and a component swapped for a symlink
// since (by a tenant writing into a hostPath volume, say) is refused, not
// followed out of where the kubelet meant.
func openSource(p string) (int, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if errors.Is(err, unix.ELOOP) {
		return -1, badSpec(fmt.Errorf("bind source %s: a part of it became a symlink after the container was created: refused", p))
	}
	if err != nil {
		return -1, fmt.Errorf("bind source %s: %w", p, err)
	}
	return fd, nil
}

// bindTree clones a bind mount's source as a detached tree and gives it
// the mount's attributes: idmapped through the user namespace userns
// (when not -1), read-only and the other flags, propagation.
func bindTree(m specs.Mount, userns int) (int, error) {
	o := parseOptions(m.Options)
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if o.recursive {
		flags |= unix.AT_RECURSIVE
	}
	src, err := openSource(m.Source)
	if err != nil {
		return -1, err
	}
	tree, err := unix.OpenTree(src, "", flags|unix.AT_EMPTY_PATH)
	unix.Close(src)
	if err != nil {
		return -1, fmt.Errorf("clone %s: %w", m.Source, err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(tree)
		return -1, fmt.Errorf("%s of %s: %w", what, m.Destination, err)
	}
	recursive := uint(0)
	if o.recursive {
		recursive = unix.AT_RECURSIVE
	}
	if userns >= 0 {
		// Files the host's root owns are the container root's through
		// this mount, and what the container writes is owned on disk by
		// the IDs its users map to.
		at := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|recursive, at); err != nil {
			return fail("idmap "+m.Source+" (its file system must support idmapped mounts for a pod in a user namespace)", err)
		}
	}
	// Read-only and the other flags apply to the top mount, as a
	// non-recursive read-only bind means (submounts stay as they are),
	// unless rro asked for every mount; propagation applies to the whole
	// tree.
	if o.attr != 0 || o.setAtime {
		at := &unix.MountAttr{Attr_set: o.attr | o.atime}
		if o.setAtime {
			at.Attr_clr = unix.MOUNT_ATTR__ATIME
		}
		flags := uint(unix.AT_EMPTY_PATH)
		if o.attrAll {
			flags |= recursive
		}
		if err := unix.MountSetattr(tree, "", flags, at); err != nil {
			return fail("set attributes", err)
		}
	}
	if o.propagation != 0 {
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|recursive, &unix.MountAttr{Propagation: o.propagation}); err != nil {
			return fail("set propagation", err)
		}
	}
	return tree, nil
}

// fsMount makes a detached mount of a kernel file system.
func fsMount(fstype, source string, o mountOptions) (int, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	if source != "" {
		unix.FsconfigSetString(fs, "source", source)
	}
	for _, p := range o.params {
		k, v, hasValue := strings.Cut(p, "=")
		if hasValue {
			err = unix.FsconfigSetString(fs, k, v)
		} else {
			err = unix.FsconfigSetFlag(fs, k)
		}
		if err != nil {
			return -1, fmt.Errorf("option %s: %w", p, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, int(o.attr|o.atime))
}

// maskPath hides a path: a directory under an empty read-only tmpfs, a
// file under /dev/null, which must be the real null device (1:3) and not
// something the image put at /dev/null (CVE-2025-31133).
func maskPath(root, devNull int, p string) error {
	target, err := unix.Openat2(root, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	defer unix.Close(target)
	var st unix.Stat_t
	if err := unix.Fstat(target, &st); err != nil {
		return err
	}
	var tree int
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		tree, err = fsMount("tmpfs", "tmpfs", mountOptions{attr: unix.MOUNT_ATTR_RDONLY, params: []string{"size=0", "mode=755"}})
	} else {
		tree, err = unix.OpenTree(devNull, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	defer unix.Close(tree)
	if err := attach(tree, target); err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return nil
}

// readonlyPath binds a path read-only onto itself.
func readonlyPath(root int, p string) error {
	target, err := unix.Openat2(root, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	defer unix.Close(target)
	tree, err := unix.OpenTree(target, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	defer unix.Close(tree)
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	return attach(tree, target)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
