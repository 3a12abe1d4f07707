package executor

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// enterWorkingDir makes cwd, resolved inside root, the working directory,
// and checks afterwards that it is inside the root (CVE-2024-21626).
//
// runc's init once held a descriptor of the host's cgroup directory when
// it changed directory: a working_dir of /proc/self/fd/N then put the
// container's process in the host's file system. Two guards stand against
// that class here, and neither may be dropped for the other:
//   - the path is opened with openat2 RESOLVE_IN_ROOT, which scopes ".."
//     and absolute symlinks to root and refuses magic links (the
//     /proc/self/fd/N and /proc/<pid>/cwd kind), then entered by fchdir;
//   - after the fchdir the kernel is asked where the process is: a
//     directory not reachable from the process's root comes back as
//     "(unreachable)..." or ENOENT (runc's verifyCwd does the same).
//
// With create set, missing directories are made (a container's init, as
// runc does for the process's cwd); exec takes the directory as it is.
func enterWorkingDir(root int, cwd string, create bool) error {
	if !filepath.IsAbs(cwd) {
		return badSpec(fmt.Errorf("working_dir %q: not an absolute path", cwd))
	}
	var fd int
	var err error
	if create {
		fd, err = resolveIn(root, cwd, false)
	} else {
		fd, err = unix.Openat2(root, cwd, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
	}
	if err != nil {
		return badSpec(fmt.Errorf("working_dir %s cannot be entered inside the container's root: %w", cwd, err))
	}
	err = unix.Fchdir(fd)
	unix.Close(fd)
	if err != nil {
		return badSpec(fmt.Errorf("working_dir %s: %w", cwd, err))
	}
	return verifyCwd(cwd)
}

// verifyCwd checks that the working directory is reachable from the
// process's root.
func verifyCwd(cwd string) error {
	wd, err := unix.Getwd()
	if errors.Is(err, unix.ENOENT) || err == nil && !strings.HasPrefix(wd, "/") {
		return badSpec(fmt.Errorf("working_dir %s: it is outside the container's root (CVE-2024-21626): refused", cwd))
	}
	if err != nil {
		return fmt.Errorf("working_dir %s: check where it is: %w", cwd, err)
	}
	return nil
}
