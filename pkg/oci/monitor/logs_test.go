package monitor

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var logLine = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

func readLog(t *testing.T, p string) [][]string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		m := logLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a CRI log line: %q", l)
		}
		out = append(out, m[2:])
	}
	return out
}

func TestCRILogFormat(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	w, err := OpenLog(p)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxLogLine+10)
	w.Copy("stdout", strings.NewReader("hello\n\nworld\n"+long+"\nno newline"))
	w.Copy("stderr", strings.NewReader("oops\n"))
	w.Close()
	got := readLog(t, p)
	want := [][]string{
		{"stdout", "F", "hello"}, {"stdout", "F", ""}, {"stdout", "F", "world"},
		{"stdout", "P", long[:maxLogLine]}, {"stdout", "F", long[maxLogLine:]},
		{"stdout", "P", "no newline"}, {"stderr", "F", "oops"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if strings.Join(got[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("line %d: %.40q, want %.40q", i, got[i], want[i])
		}
	}
}

func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.log")
	w, _ := OpenLog(p)
	w.Copy("stdout", strings.NewReader("before\n"))
	os.Rename(p, p+".1") // the kubelet rotates...
	w.Copy("stdout", strings.NewReader("in between\n"))
	if err := w.Reopen(); err != nil { // ...then asks for a reopen
		t.Fatal(err)
	}
	w.Copy("stdout", strings.NewReader("after\n"))
	w.Close()
	old, cur := readLog(t, p+".1"), readLog(t, p)
	if len(old) != 2 || old[1][2] != "in between" || len(cur) != 1 || cur[0][2] != "after" {
		t.Fatalf("rotated %q, current %q", old, cur)
	}
}

// BenchmarkLogCopy is the monitor's log writer: a container's stdout of
// 100-byte lines turned into CRI log lines (timestamp, stream, tag) in
// its log file.
func BenchmarkLogCopy(b *testing.B) {
	line := strings.Repeat("x", 99) + "\n"
	out := []byte(strings.Repeat(line, 10000))
	w, err := OpenLog(filepath.Join(b.TempDir(), "c.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		w.Copy("stdout", bytes.NewReader(out))
	}
}
