package executor

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// verifyCwdOutsideRoot is the child of TestVerifyCwdRefusesADirectoryOutsideTheRoot:
// it holds a descriptor of a directory, changes its root elsewhere, enters
// the directory through the descriptor (what a leaked descriptor let
// CVE-2024-21626 do), and reports what verifyCwd says (exit 0: refused).
func verifyCwdOutsideRoot(newRoot string) int {
	outside, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return 2
	}
	if err := unix.Chroot(newRoot); err != nil {
		return 3
	}
	if err := unix.Fchdir(outside); err != nil {
		return 4
	}
	if err := verifyCwd("/proc/self/fd/3"); err == nil {
		return 1
	}
	// And inside the root it is content.
	if err := unix.Chdir("/"); err != nil || verifyCwd("/") != nil {
		return 5
	}
	return 0
}

// The second guard of CVE-2024-21626: if a working directory outside the
// root were ever entered (the first guard, openat2 RESOLVE_IN_ROOT, makes
// that impossible through a path), verifyCwd refuses it.
func TestVerifyCwdRefusesADirectoryOutsideTheRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "verify-cwd-outside-root", t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("verifyCwd in a directory outside the root: %v (%s); exit 1 means it was accepted", err, strings.TrimSpace(string(out)))
	}
}
