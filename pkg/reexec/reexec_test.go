package reexec

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv("CRID_REEXEC_TEST") == "echo" {
		os.Stdout.WriteString("re-executed " + strings.Join(os.Args[1:], " "))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSealedCopyRunsAndCannotBeWritten(t *testing.T) {
	b, err := Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cmd := b.Command("a", "b")
	cmd.Env = append(os.Environ(), "CRID_REEXEC_TEST=echo")
	out, err := cmd.Output()
	if err != nil || string(out) != "re-executed a b" {
		t.Fatalf("run: %q, %v", out, err)
	}
	if _, err := unix.Pwrite(int(b.f.Fd()), []byte("x"), 0); err == nil {
		t.Fatal("the sealed binary was written")
	}
	if err := unix.Ftruncate(int(b.f.Fd()), 0); err == nil {
		t.Fatal("the sealed binary was truncated")
	}
	// Opening the path for writing may succeed; writing must not.
	if f, err := os.OpenFile(b.Path(), os.O_WRONLY, 0); err == nil {
		_, werr := f.WriteAt([]byte("x"), 0)
		f.Close()
		if werr == nil {
			t.Fatal("wrote through a reopened path")
		}
	}
}
