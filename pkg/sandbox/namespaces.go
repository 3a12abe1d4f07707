// Package sandbox runs pod sandboxes: the namespaces a pod's containers
// share, the files that make them a host (hostname, hosts, resolv.conf,
// /dev/shm), the pod's network through CNI, and the state that lets crid
// find all of it again after a restart.
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/infra"
)

// Namespaces are the pinned namespace files of a pod. An empty path means
// the pod uses the host's namespace of that kind.
type Namespaces struct {
	Net string `json:"net,omitempty"`
	IPC string `json:"ipc,omitempty"`
	UTS string `json:"uts,omitempty"`
	PID string `json:"pid,omitempty"` // only with a shared PID namespace
	// User is the pod's user namespace (hostUsers: false), which owns
	// the others.
	User string `json:"user,omitempty"`
}

// plannedPins are the files a pod's namespaces will be pinned at: named
// in its record before any is made, so that start-up can unpin them
// whatever step a crash cut short (unpinning what is not pinned is
// harmless).
func plannedPins(dir string, spec Spec) Namespaces {
	ns := pinsIn(dir)
	if spec.HostNetwork {
		ns.Net, ns.UTS = "", ""
	}
	if spec.HostIPC {
		ns.IPC = ""
	}
	if !spec.SharedPID {
		ns.PID = ""
	}
	if spec.UserNS == nil {
		ns.User = ""
	}
	return ns
}

// pinsIn are the pin files of every kind under a pod's directory.
func pinsIn(dir string) Namespaces {
	ns := filepath.Join(dir, "ns")
	return Namespaces{Net: filepath.Join(ns, "net"), IPC: filepath.Join(ns, "ipc"), UTS: filepath.Join(ns, "uts"),
		PID: filepath.Join(ns, "pid"), User: filepath.Join(ns, "user")}
}

// nsKinds says which namespaces a pod gets of its own.
type nsKinds struct{ net, ipc, uts bool }

// pinThread makes new namespaces on a thread of its own and pins them by
// bind-mounting the thread's namespace files under dir, as CRI-O's pinns
// does, without a process per pod: most pods do not share a PID namespace
// and need nothing running. The thread is never returned to the Go
// scheduler (no UnlockOSThread): it carries the new namespaces and dies
// with its goroutine.
func pinThread(dir string, kinds nsKinds, hostname string) (Namespaces, error) {
	type result struct {
		ns  Namespaces
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := unsharePinned(dir, kinds, hostname)
		done <- result{ns, err}
	}()
	r := <-done
	return r.ns, r.err
}

func unsharePinned(dir string, kinds nsKinds, hostname string) (Namespaces, error) {
	flags := 0
	if kinds.net {
		flags |= unix.CLONE_NEWNET
	}
	if kinds.ipc {
		flags |= unix.CLONE_NEWIPC
	}
	if kinds.uts {
		flags |= unix.CLONE_NEWUTS
	}
	if flags == 0 {
		return Namespaces{}, nil
	}
	if err := unix.Unshare(flags); err != nil {
		return Namespaces{}, fmt.Errorf("unshare namespaces: %w", err)
	}
	if kinds.uts && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return Namespaces{}, fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if kinds.net {
		if err := infra.LoopbackUp(); err != nil {
			return Namespaces{}, err
		}
	}
	return pin(dir, kinds, "/proc/thread-self/ns")
}

// pinProcess pins the namespaces of a running process: the infra process
// of a pod with a shared PID namespace (pid), or the one that made a
// pod's user namespace and the namespaces it owns (user).
func pinProcess(dir string, kinds nsKinds, pid int, sharedPID, user bool) (Namespaces, error) {
	ns, err := pin(dir, kinds, fmt.Sprintf("/proc/%d/ns", pid))
	if err != nil {
		return ns, err
	}
	for _, k := range []struct {
		on   bool
		name string
		dst  *string
	}{{sharedPID, "pid", &ns.PID}, {user, "user", &ns.User}} {
		if !k.on {
			continue
		}
		p := filepath.Join(dir, k.name)
		if err := bindNS(fmt.Sprintf("/proc/%d/ns/%s", pid, k.name), p); err != nil {
			unpin(ns)
			return Namespaces{}, err
		}
		*k.dst = p
	}
	return ns, nil
}

func pin(dir string, kinds nsKinds, from string) (Namespaces, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Namespaces{}, err
	}
	var ns Namespaces
	for _, k := range []struct {
		on   bool
		name string
		dst  *string
	}{{kinds.net, "net", &ns.Net}, {kinds.ipc, "ipc", &ns.IPC}, {kinds.uts, "uts", &ns.UTS}} {
		if !k.on {
			continue
		}
		p := filepath.Join(dir, k.name)
		if err := bindNS(filepath.Join(from, k.name), p); err != nil {
			unpin(ns)
			return Namespaces{}, err
		}
		*k.dst = p
	}
	return ns, nil
}

func bindNS(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o400)
	if err != nil {
		return fmt.Errorf("create pin %s: %w", dst, err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return fmt.Errorf("pin %s at %s: %w", src, dst, err)
	}
	return nil
}

// unpin releases pinned namespaces; what is not pinned is skipped, so it
// can run again after a crash halfway.
func unpin(ns Namespaces) error {
	var errs []error
	for _, p := range []string{ns.Net, ns.IPC, ns.UTS, ns.PID, ns.User} {
		if p == "" {
			continue
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unpin %s: %w", p, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// IsPinned says whether p is a pinned namespace file: a record says so
// only if the kernel agrees, so a crash between creating the file and
// mounting on it is told apart from a live pin.
func IsPinned(p string) bool {
	var st unix.Statfs_t
	return unix.Statfs(p, &st) == nil && st.Type == unix.NSFS_MAGIC
}
