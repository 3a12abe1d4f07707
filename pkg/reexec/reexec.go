// Package reexec runs crid's own binary again, for the processes crid
// starts in a pod's namespaces (the pod's infra process; later, container
// init).
//
// The binary run is a sealed in-memory copy, never the file on disk: a
// process in a pod that can see the infra process (a shared PID namespace
// shows it as PID 1) could otherwise open /proc/1/exe and reach crid's
// binary on the host, as in CVE-2019-5736 against runc. A sealed memfd
// cannot be written, grown or shrunk by anyone, and exists only while a
// process holds it.
package reexec

import (
	"fmt"
	"io"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// Binary is the sealed copy of the running executable.
type Binary struct {
	f    *os.File
	path string // set instead of f by Self
}

// Seal copies the running executable into a sealed memfd.
func Seal() (*Binary, error) { return SealFile("/proc/self/exe") }

// SealFile copies the executable at path into a sealed memfd.
func SealFile(path string) (*Binary, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open binary %s: %w", path, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("crid", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "crid-sealed")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy own binary: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal own binary: %w", err)
	}
	return &Binary{f: f}, nil
}

// Self is the binary the calling process runs, for a process that was
// itself started from a sealed copy (a pod's monitor): exec'ing
// /proc/self/exe reuses that copy, sealed and shared, instead of making
// another.
func Self() *Binary { return &Binary{path: "/proc/self/exe"} }

// Path is a path that execs the sealed copy.
func (b *Binary) Path() string {
	if b.f == nil {
		return b.path
	}
	return fmt.Sprintf("/proc/self/fd/%d", b.f.Fd())
}

// Command runs the sealed binary with args; argv[0] is "crid". The memfd
// is close-on-exec in the child, which holds the image through exec only.
func (b *Binary) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(b.Path(), args...)
	cmd.Args[0] = "crid"
	return cmd
}

// File is the sealed copy's descriptor, for a process to be handed it
// (nil for Self).
func (b *Binary) File() *os.File { return b.f }

// Close releases the copy.
func (b *Binary) Close() error {
	if b.f == nil {
		return nil
	}
	return b.f.Close()
}
