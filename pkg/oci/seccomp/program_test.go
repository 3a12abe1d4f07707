package seccomp

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// getppidFails is a profile that lets everything through but getppid,
// which fails with errno 99: a call that never fails on its own, so the
// filter is what answers.
func getppidFails() *specs.LinuxSeccomp {
	ret := uint(99)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: &ret}},
	}
}

// TestMain runs the filter-loading children: a filter stays with its
// process, so each load happens in a process of its own.
func TestMain(m *testing.M) {
	switch os.Getenv("CRID_SECCOMP_CHILD") {
	case "":
		os.Exit(m.Run())
	case "load":
		os.Exit(child(func() error { return Load(getppidFails(), true) }))
	case "program":
		prog, err := Compile(getppidFails())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(child(func() error { return LoadProgram(prog, true) }))
	}
}

// child loads a filter, then asks getppid on the loading thread and on
// another: 0 when both fail with 99 (the filter is in every thread).
func child(load func() error) int {
	runtime.LockOSThread()
	if err := load(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 2
	}
	ask := func() unix.Errno {
		_, _, errno := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		return errno
	}
	other := make(chan unix.Errno)
	go func() {
		runtime.LockOSThread() // a thread that is not the loader's
		other <- ask()
	}()
	here, there := ask(), <-other
	if here != 99 || there != 99 {
		fmt.Fprintf(os.Stderr, "getppid: errno %d on the loading thread, %d on another; want 99 on both\n", here, there)
		return 1
	}
	return 0
}

// TestProgramLoadsAsLibseccompDoes: a program compiled once and loaded
// later does what libseccomp's own load does, in every thread.
func TestProgramLoadsAsLibseccompDoes(t *testing.T) {
	for _, mode := range []string{"load", "program"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CRID_SECCOMP_CHILD="+mode)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%s: %v: %s", mode, err, stderr.String())
		}
	}
}

func TestCompileTheDefaultProfile(t *testing.T) {
	prof, err := profiles.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
	if err != nil {
		t.Fatal(err)
	}
	var c Cache
	a, err := c.Program(prof)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Program(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || &a[0] != &b[0] {
		t.Errorf("a second ask compiled again (or compiled nothing: %d bytes)", len(a))
	}
	other, err := c.Program(getppidFails())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, other) {
		t.Error("two profiles share one program")
	}
	if err := LoadProgram(a[:len(a)-1], false); err == nil {
		t.Error("a truncated program was taken")
	}
}
