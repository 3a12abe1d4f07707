// Package netns runs code inside a pinned namespace: on a thread of its
// own that joins the namespace and is never handed back to the Go
// scheduler (no UnlockOSThread), so it dies with its goroutine and no
// other goroutine ever runs in the namespace by chance.
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNet runs fn on a thread that has joined the network namespace at
// path (sockets fn makes, and the interfaces it sees, are the
// namespace's).
func InNet(path string, fn func() error) error {
	return In(path, unix.CLONE_NEWNET, fn)
}

// In runs fn on a thread that has joined the namespace of kind (a
// CLONE_NEW* flag) at path.
func In(path string, kind int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), kind); err != nil {
			errc <- fmt.Errorf("join namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
