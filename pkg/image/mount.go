package image

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountOverlay stacks lowers (the image's layer dirs, lowest first) at
// target, with upper and work for a container's writes; with upper empty
// the mount is read-only.
//
// Layers are handed to the kernel one by one with fsconfig "lowerdir+"
// (Linux 6.8 and later), so an image of a hundred layers never meets the
// one-page limit of a mount option string, which classic
// "lowerdir=a:b:c" overflows at a few dozen layers of long paths. Older
// kernels get the classic string while it fits.
//
// A writable mount is "volatile" (Linux 5.10 and later; without it where
// the kernel lacks it): overlayfs then skips every sync of the upper
// layer. A container's writable layer never outlives a reboot (after one
// every container is exited and the kubelet makes new ones, on new
// layers), so those syncs buy nothing, and they cost: the unmount at
// RemoveContainer syncs the whole file system that holds the upper
// directory (0.9-1.8 ms on an idle disk here against 0.1 ms, and on a busy
// node a flush of every dirty page on it), and a tenant's sync(2) or
// fsync in its root flushes the node's disk for it. The price is that an
// upper directory left by a crash of the machine cannot be mounted again,
// which no container needs.
func MountOverlay(target string, lowers []string, upper, work string) error {
	if len(lowers) == 0 {
		return errors.New("overlay mount needs at least one layer")
	}
	for _, d := range append(append([]string{}, lowers...), upper, work) {
		if strings.ContainsAny(d, ":,") {
			return fmt.Errorf("overlay path %q contains ':' or ','", d)
		}
	}
	err := mountWithFsconfig(target, lowers, upper, work)
	if err == nil || !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return mountClassic(target, lowers, upper, work)
}

// MountOverlayIDMapped is MountOverlay for a container in a user
// namespace (the pinned file userns): each layer is stacked through an
// idmapped mount of it, so the files the host's root owns in the layers
// are the container root's, and upper, whose root directory the caller
// gives to the container's root, keeps what the container writes under
// the host IDs its users map to. It needs lowerdir+ (Linux 6.8).
func MountOverlayIDMapped(target string, lowers []string, upper, work, userns string) error {
	if len(lowers) == 0 || upper == "" {
		return errors.New("an idmapped overlay needs layers and an upper dir")
	}
	ns, err := os.Open(userns)
	if err != nil {
		return fmt.Errorf("open user namespace %s: %w", userns, err)
	}
	defer ns.Close()
	mapped := make([]string, len(lowers))
	for i, l := range lowers {
		tree, err := unix.OpenTree(unix.AT_FDCWD, l, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("clone layer %s: %w", l, err)
		}
		defer unix.Close(tree)
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}); err != nil {
			return fmt.Errorf("idmap layer %s (its file system must support idmapped mounts): %w", l, err)
		}
		mapped[i] = "/proc/self/fd/" + strconv.Itoa(tree)
	}
	return mountWithFsconfig(target, mapped, upper, work)
}

func mountWithFsconfig(target string, lowers []string, upper, work string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	// "lowerdir+" adds a layer below those already given: top first.
	for i := len(lowers) - 1; i >= 0; i-- {
		if err := unix.FsconfigSetString(fd, "lowerdir+", lowers[i]); err != nil {
			return fmt.Errorf("overlay lowerdir+ %s: %w", lowers[i], err)
		}
	}
	if upper != "" {
		if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
			return fmt.Errorf("overlay upperdir %s: %w", upper, err)
		}
		if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
			return fmt.Errorf("overlay workdir %s: %w", work, err)
		}
		if err := unix.FsconfigSetFlag(fd, "volatile"); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("overlay volatile: %w", err)
		}
	} else if len(lowers) == 1 {
		// overlay wants two lowers without an upper; an empty second one
		// is the kernel's usual answer, but a read-only bind of the one
		// layer is simpler and exact.
		return bindReadOnly(lowers[0], target)
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("create overlay for %s: %w", target, err)
	}
	attr := 0
	if upper == "" {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount overlay for %s: %w", target, err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}

func mountClassic(target string, lowers []string, upper, work string) error {
	rev := make([]string, len(lowers))
	for i, l := range lowers {
		rev[len(lowers)-1-i] = l
	}
	if upper == "" && len(lowers) == 1 {
		return bindReadOnly(lowers[0], target)
	}
	opts := "lowerdir=" + strings.Join(rev, ":")
	flags := uintptr(0)
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	} else {
		flags = unix.MS_RDONLY
	}
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("overlay options for %d layers are %d bytes, over the page this kernel allows (and it lacks lowerdir+)", len(lowers), len(opts))
	}
	if upper != "" && len(opts)+len(",volatile") < unix.Getpagesize() {
		if err := unix.Mount("overlay", target, "overlay", flags, opts+",volatile"); err == nil {
			return nil
		}
	}
	if err := unix.Mount("overlay", target, "overlay", flags, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}

func bindReadOnly(src, target string) error {
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", src, target, err)
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("make %s read-only: %w", target, err)
	}
	return nil
}
