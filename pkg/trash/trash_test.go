package trash

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// tree makes dir with a few files and a subdirectory in it.
func tree(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a", "sub/b", "sub/deeper/c"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func gone(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	return os.IsNotExist(err)
}

func TestDiscardThenEmpty(t *testing.T) {
	base := t.TempDir()
	b, err := Open(filepath.Join(base, "trash"))
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "containers", "abc")
	tree(t, victim)
	if err := b.Discard(victim); err != nil {
		t.Fatal(err)
	}
	if !gone(t, victim) {
		t.Fatalf("%s is still there after Discard", victim)
	}
	if n := b.Len(); n != 1 {
		t.Fatalf("%d entries in the bin, want 1", n)
	}
	// Discarding what is gone (a retried removal) is no error.
	if err := b.Discard(victim); err != nil {
		t.Errorf("discarding a removed path: %v", err)
	}
	if err := b.Empty(); err != nil {
		t.Fatal(err)
	}
	if n := b.Len(); n != 0 {
		t.Errorf("%d entries left after Empty", n)
	}
}

func TestTwoDiscardsOfOneNameKeepBoth(t *testing.T) {
	base := t.TempDir()
	b, err := Open(filepath.Join(base, "trash"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		p := filepath.Join(base, "x", "same")
		tree(t, p)
		if err := b.Discard(p); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Len(); n != 3 {
		t.Errorf("%d entries, want 3: a second discard of a name must not clobber the first", n)
	}
}

func TestStartEmptiesLeftoversAndNewEntries(t *testing.T) {
	base := t.TempDir()
	bin := filepath.Join(base, "trash")
	// What a crashed crid left in its bin.
	tree(t, filepath.Join(bin, "left-by-a-crash.1"))
	b, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	victim := filepath.Join(base, "pod")
	tree(t, victim)
	if err := b.Discard(victim); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := b.Len(); n != 0 {
		t.Errorf("%d entries still in the bin", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseEmptiesWhatIsLeft(t *testing.T) {
	base := t.TempDir()
	b, err := Open(filepath.Join(base, "trash"))
	if err != nil {
		t.Fatal(err)
	}
	// Not started: Close alone must still leave the bin empty.
	for _, n := range []string{"one", "two"} {
		p := filepath.Join(base, n)
		tree(t, p)
		if err := b.Discard(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.Len(); n != 0 {
		t.Errorf("%d entries left after Close", n)
	}
}

// TestOtherFileSystemIsRemovedAtOnce: a path on no bin's file system
// cannot be renamed there (EXDEV): it is deleted in the call.
func TestOtherFileSystemIsRemovedAtOnce(t *testing.T) {
	base := t.TempDir()
	shm, err := os.MkdirTemp("/dev/shm", "trash-test")
	if err != nil {
		t.Skipf("no /dev/shm to hold a bin on another file system: %v", err)
	}
	defer os.RemoveAll(shm)
	var sa, sb syscall.Stat_t
	if syscall.Stat(base, &sa) != nil || syscall.Stat(shm, &sb) != nil || sa.Dev == sb.Dev {
		t.Skipf("%s and %s are on one file system", base, shm)
	}
	bin, err := Open(filepath.Join(shm, "trash"))
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "elsewhere")
	tree(t, victim)
	if err := bin.Discard(victim); err != nil {
		t.Fatal(err)
	}
	if !gone(t, victim) {
		t.Errorf("%s is still there", victim)
	}
	if n := bin.Len(); n != 0 {
		t.Errorf("%d entries in the bin, want none", n)
	}
}

// TestMountsUnderAnEntryAreUnmountedFirst: a pin or root a crash left
// mounted inside a removed directory is unmounted, never walked into.
func TestMountsUnderAnEntryAreUnmountedFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	base := t.TempDir()
	b, err := Open(filepath.Join(base, "trash"))
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "pod")
	mnt := filepath.Join(victim, "shm")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// The mount's content stands for what must not be deleted through it.
	src := filepath.Join(base, "precious")
	tree(t, src)
	if err := syscall.Mount(src, mnt, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	if err := b.Discard(victim); err != nil {
		t.Fatal(err)
	}
	if err := b.Empty(); err != nil {
		t.Fatal(err)
	}
	if n := b.Len(); n != 0 {
		t.Errorf("%d entries left", n)
	}
	if _, err := os.Stat(filepath.Join(src, "sub", "deeper", "c")); err != nil {
		t.Errorf("the removal walked into the mount: %v", err)
	}
}

// TestAGoneBinStillRemoves: with its bin deleted under it, a discard
// still removes the path rather than leave it.
func TestAGoneBinStillRemoves(t *testing.T) {
	base := t.TempDir()
	bin := filepath.Join(base, "trash")
	b, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(bin)
	victim := filepath.Join(base, "pod")
	tree(t, victim)
	if err := b.Discard(victim); err != nil {
		t.Fatal(err)
	}
	if !gone(t, victim) {
		t.Errorf("%s is still there", victim)
	}
}
