// Package archive unpacks image layers. A layer is hostile input: its tar
// stream may try to write outside the directory it is unpacked into, through
// "../" names, absolute names, symlinks or hard links that lead out, or
// headers built to exhaust memory. Apply refuses each with an error naming
// the entry, and writes nothing outside the directory.
//
// Every file is created relative to a directory file descriptor that was
// opened with openat2(RESOLVE_BENEATH): the kernel, not a string check,
// guarantees that path resolution stays below the layer's root, whatever
// symlinks the layer made earlier in the stream. The final component is
// never followed (O_NOFOLLOW, or removed and recreated).
//
// Layers are unpacked for overlayfs: each into its own empty directory,
// with whiteouts turned into overlay's own form (a 0:0 character device for
// a removed file, the trusted.overlay.opaque xattr for an opaque
// directory), so a stack of them mounts as the image's root.
package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	// maxPath and maxName are the kernel's PATH_MAX and NAME_MAX: a longer
	// name cannot be created, so it is refused before anything is made.
	maxPath = 4096
	maxName = 255
)

// Options change how a layer is applied.
type Options struct {
	// NoOwnership leaves files owned by the caller: for unprivileged tests,
	// which cannot chown, make device nodes or set trusted.* xattrs.
	NoOwnership bool
}

// Stats says what a layer held.
type Stats struct {
	Entries int
	Bytes   int64 // of regular file content
}

// Error is a refusal of one entry of a layer.
type Error struct {
	Entry  string
	Reason string
	Err    error // the system's error behind Reason, if one (ENOSPC, say)
}

func (e *Error) Error() string { return fmt.Sprintf("layer entry %q: %s", e.Entry, e.Reason) }

// Unwrap lets a caller tell a full disk from a hostile layer.
func (e *Error) Unwrap() error { return e.Err }

// Apply unpacks the tar stream r into dir, which must exist and should be
// empty. It stops at the end-of-archive marker; the caller drains r if it
// verifies a digest over the whole stream.
func Apply(dir string, r io.Reader, opts Options) (Stats, error) {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open layer dir %s: %w", dir, err)
	}
	defer unix.Close(root)
	a := &applier{root: root, dir: dir, opts: opts}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.stats, fmt.Errorf("read layer tar after %d entries: %w", a.stats.Entries, err)
		}
		if err := a.entry(h, tr); err != nil {
			return a.stats, err
		}
		a.stats.Entries++
	}
	// Directory times last: creating their children changed them.
	for _, d := range a.dirTimes {
		if err := a.setTimes(d.name, d.atime, d.mtime); err != nil {
			return a.stats, err
		}
	}
	return a.stats, nil
}

type dirTime struct {
	name         string
	atime, mtime time.Time
}

type applier struct {
	root     int
	dir      string
	opts     Options
	stats    Stats
	dirTimes []dirTime
	buf      []byte // one copy buffer for every file of the layer
}

// cleanName checks an entry name and returns it relative and clean.
func cleanName(name string) (string, error) {
	if len(name) > maxPath {
		return "", fmt.Errorf("name is %d bytes, longer than PATH_MAX", len(name))
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New("name climbs out with ..")
		}
		if len(c) > maxName {
			return "", fmt.Errorf("component is %d bytes, longer than NAME_MAX", len(c))
		}
	}
	return path.Clean(name), nil
}

func (a *applier) entry(h *tar.Header, r io.Reader) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(h.Name)
	if err != nil {
		return &Error{Entry: h.Name, Reason: err.Error(), Err: err}
	}
	if name == "." {
		return nil // the layer's own root: overlay takes the root's attributes from the mount
	}
	parent, base := path.Split(name)
	pfd, err := a.openDir(strings.TrimSuffix(parent, "/"), true)
	if err != nil {
		return &Error{Entry: h.Name, Reason: err.Error(), Err: err}
	}
	defer unix.Close(pfd)

	if base == opaqueWhiteout {
		if a.opts.NoOwnership {
			return nil
		}
		if err := unix.Fsetxattr(pfd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return &Error{Entry: h.Name, Reason: fmt.Sprintf("mark directory opaque: %v", err), Err: err}
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		target := strings.TrimPrefix(base, whiteoutPrefix)
		if target == "" || target == "." || target == ".." {
			return &Error{Entry: h.Name, Reason: "whiteout of nothing"}
		}
		if err := a.replace(pfd, target, false); err != nil {
			return &Error{Entry: h.Name, Reason: err.Error(), Err: err}
		}
		if a.opts.NoOwnership {
			return nil
		}
		if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
			return &Error{Entry: h.Name, Reason: fmt.Sprintf("make whiteout: %v", err), Err: err}
		}
		return nil
	}

	if err := a.replace(pfd, base, h.Typeflag == tar.TypeDir); err != nil {
		return &Error{Entry: h.Name, Reason: err.Error(), Err: err}
	}
	if err := a.create(pfd, base, name, h, r); err != nil {
		return &Error{Entry: h.Name, Reason: err.Error(), Err: err}
	}
	return nil
}

// openDir opens the directory rel below the root without leaving it,
// making missing directories on the way when create is set (a layer may
// name a file before, or without, its directory).
func (a *applier) openDir(rel string, create bool) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	if rel == "" || rel == "." {
		return unix.Openat2(a.root, ".", how)
	}
	fd, err := unix.Openat2(a.root, rel, how)
	if err == nil {
		return fd, nil
	}
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		return -1, fmt.Errorf("directory %s leads out of the layer through a symlink", rel)
	}
	if !errors.Is(err, unix.ENOENT) || !create {
		return -1, fmt.Errorf("open directory %s: %w", rel, err)
	}
	parent, base := path.Split(rel)
	pfd, err := a.openDir(strings.TrimSuffix(parent, "/"), true)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("make directory %s: %w", rel, err)
	}
	return unix.Openat2(pfd, base, how)
}

// replace clears the way for a new entry called base: a later entry wins
// over an earlier one of the same name, except that a directory keeps its
// contents when the new entry is a directory too.
func (a *applier) replace(pfd int, base string, keepDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(pfd, base, 0)
	}
	if keepDir {
		return nil
	}
	return removeAllAt(pfd, base)
}

// removeAllAt removes the directory base below pfd and everything in it,
// without following symlinks.
func removeAllAt(pfd int, base string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			f.Close()
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = removeAllAt(fd, n)
		} else {
			err = unix.Unlinkat(fd, n, 0)
		}
		if err != nil {
			f.Close()
			return err
		}
	}
	f.Close()
	return unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
}

func (a *applier) create(pfd int, base, name string, h *tar.Header, r io.Reader) error {
	mode := uint32(h.Mode) & 0o7777
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("make directory: %w", err)
		}
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory: %w", err)
		}
		defer unix.Close(fd)
		if err := a.attributes(fd, h, mode); err != nil {
			return err
		}
		a.dirTimes = append(a.dirTimes, dirTime{name, h.AccessTime, h.ModTime})
		return nil

	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		f := os.NewFile(uintptr(fd), name)
		if a.buf == nil {
			a.buf = make([]byte, 32<<10)
		}
		// The file hidden behind a plain Writer: *os.File's ReadFrom
		// would find no splice from a tar stream and allocate a fresh
		// 32 KiB buffer per file (16 MB for a layer of 500 files).
		n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, a.buf)
		a.stats.Bytes += n
		if err != nil {
			f.Close()
			return fmt.Errorf("write file: %w", err)
		}
		// Ownership before mode: chown clears the setuid and setgid bits.
		if err := a.attributes(fd, h, mode); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close file: %w", err)
		}

	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, pfd, base); err != nil {
			return fmt.Errorf("make symlink: %w", err)
		}
		if !a.opts.NoOwnership {
			if err := unix.Fchownat(pfd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown symlink: %w", err)
			}
		}

	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil || target == "." {
			return fmt.Errorf("hard link to %q: target outside the layer", h.Linkname)
		}
		tparent, tbase := path.Split(target)
		tfd, err := a.openDir(strings.TrimSuffix(tparent, "/"), false)
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", h.Linkname, err)
		}
		defer unix.Close(tfd)
		// Without AT_SYMLINK_FOLLOW a link to a symlink links the symlink
		// itself, never what it points at. The link shares its target's
		// inode, so the header's mode and owner are not applied: they would
		// change the target too.
		if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("hard link to %q, which is not in this layer", h.Linkname)
			}
			return fmt.Errorf("hard link to %q: %w", h.Linkname, err)
		}
		return nil

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if a.opts.NoOwnership && h.Typeflag != tar.TypeFifo {
			return nil
		}
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknodat(pfd, base, kind|mode, int(dev)); err != nil {
			return fmt.Errorf("make device node: %w", err)
		}
		fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open device node: %w", err)
		}
		defer unix.Close(fd)
		if !a.opts.NoOwnership {
			if err := unix.Fchownat(fd, "", h.Uid, h.Gid, unix.AT_EMPTY_PATH); err != nil {
				return fmt.Errorf("chown: %w", err)
			}
		}
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}

	default:
		return fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
	}
	return a.setTimesAt(pfd, base, h.AccessTime, h.ModTime)
}

// attributes sets owner, xattrs and mode on an open file or directory.
func (a *applier) attributes(fd int, h *tar.Header, mode uint32) error {
	if !a.opts.NoOwnership {
		if err := unix.Fchown(fd, h.Uid, h.Gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	for key, value := range h.PAXRecords {
		attr, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok {
			continue
		}
		// overlay's own xattrs in a layer would steer the mount (redirects,
		// metacopy, opacity) from inside the image: only the unpacker makes
		// them.
		if strings.HasPrefix(attr, "trusted.overlay.") {
			return fmt.Errorf("xattr %s is overlayfs's own and may not come from a layer", attr)
		}
		if a.opts.NoOwnership && !strings.HasPrefix(attr, "user.") {
			continue
		}
		if err := unix.Fsetxattr(fd, attr, []byte(value), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", attr, err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

func (a *applier) setTimes(name string, atime, mtime time.Time) error {
	parent, base := filepath.Split(name)
	pfd, err := a.openDir(strings.TrimSuffix(parent, "/"), false)
	if err != nil {
		return &Error{Entry: name, Reason: err.Error(), Err: err}
	}
	defer unix.Close(pfd)
	if err := a.setTimesAt(pfd, base, atime, mtime); err != nil {
		return &Error{Entry: name, Reason: err.Error(), Err: err}
	}
	return nil
}

func (a *applier) setTimesAt(pfd int, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}
