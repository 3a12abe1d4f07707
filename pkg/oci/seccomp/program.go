package seccomp

// #include <malloc.h>
import "C"

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Compile turns cfg into the BPF program the kernel runs: what Load
// builds and loads in one go, kept to be loaded by LoadProgram later, in
// another process. Building the default profile's filter with libseccomp
// takes about 7 ms here (BenchmarkFilter), paid in every container's init
// and every exec (each liveness probe) before it runs anything; compiled
// once per profile and handed over, the init and the exec only load it.
// The program is the same with no_new_privs or without: that is a
// property of the load, not of the filter.
func Compile(cfg *specs.LinuxSeccomp) ([]byte, error) {
	f, err := Filter(cfg, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		f.Release()
		// libseccomp builds the filter in malloc's memory, from an arena
		// of the calling thread's (about 1.1 MB for the default
		// profile), which glibc keeps mapped once freed: crid would carry
		// it for its life. malloc_trim gives it back.
		C.malloc_trim(0)
	}()
	// Through a memfd: libseccomp exports to memory only from 2.6, and
	// Debian 12 has 2.5.
	fd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for the seccomp program: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "seccomp-bpf")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	prog, err := io.ReadAll(io.NewSectionReader(mf, 0, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the seccomp program: %w", err)
	}
	if len(prog) == 0 || len(prog)%int(unsafe.Sizeof(unix.SockFilter{})) != 0 {
		return nil, fmt.Errorf("export seccomp filter: %d bytes is no BPF program", len(prog))
	}
	return prog, nil
}

// LoadProgram loads a program Compile made into every thread of the
// caller, as libseccomp's load does (TSYNC: a Go process runs on several
// threads), setting no_new_privs first when asked: without it the kernel
// takes a filter only from a thread with CAP_SYS_ADMIN.
func LoadProgram(prog []byte, noNewPrivs bool) error {
	n := len(prog) / int(unsafe.Sizeof(unix.SockFilter{}))
	if n == 0 || n > 0xffff || len(prog)%int(unsafe.Sizeof(unix.SockFilter{})) != 0 {
		return fmt.Errorf("seccomp program of %d bytes is no BPF program", len(prog))
	}
	if noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	// A copy the Go collector cannot move while the kernel reads it.
	filters := make([]unix.SockFilter, n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&filters[0])), len(prog)), prog)
	fprog := unix.SockFprog{Len: uint16(n), Filter: &filters[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("load seccomp program: %w", errno)
	}
	return nil
}

// Cache compiles each distinct profile once. Profiles are few on a node
// (the runtime's default, a handful of localhost ones), so it is bounded
// by forgetting everything past Max rather than by recency.
type Cache struct {
	mu    sync.Mutex
	progs map[[sha256.Size]byte][]byte
}

// Max is how many profiles a Cache keeps.
const Max = 64

// Program is cfg's compiled program.
func (c *Cache) Program(cfg *specs.LinuxSeccomp) ([]byte, error) {
	if cfg == nil {
		return nil, errors.New("no seccomp configuration")
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	key := sha256.Sum256(data)
	c.mu.Lock()
	prog, ok := c.progs[key]
	c.mu.Unlock()
	if ok {
		return prog, nil
	}
	if prog, err = Compile(cfg); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.progs == nil || len(c.progs) >= Max {
		c.progs = map[[sha256.Size]byte][]byte{}
	}
	c.progs[key] = prog
	c.mu.Unlock()
	return prog, nil
}
