package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var logLine = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

// readLog reads a CRI log: stream, tag and content of each line, after
// checking its timestamp is RFC 3339 as the kubelet parses it.
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
			t.Fatalf("not a CRI log line: %.80q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil || !strings.HasSuffix(m[1], "Z") {
			t.Fatalf("timestamp %q: %v", m[1], err)
		}
		out = append(out, m[2:])
	}
	return out
}

// TestCRILogFormat: what a container writes reaches its log as the
// kubelet reads it: a line a record tagged F, a line longer than 16 KiB
// in pieces tagged P and the rest F, what ends without a newline as P
// (a termination message from the log must not grow one).
func TestCRILogFormat(t *testing.T) {
	f := setup(t)
	const maxLogLine = 16 << 10
	long := strings.Repeat("x", maxLogLine+10)
	b := f.bundle(t, "fmt", fmt.Sprintf(`printf 'hello\n\nworld\n'; head -c %d /dev/zero | tr '\0' x; echo; echo oops >&2; printf 'no newline'`, len(long)))
	logPath := filepath.Join(t.TempDir(), "fmt.log")
	if _, err := f.client.Start(context.Background(), Request{ID: "fmt", Bundle: b, Log: logPath}); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, b); e.ExitCode != 0 {
		t.Fatalf("exit %+v", e)
	}
	var stdout, stderr []string
	for _, l := range readLog(t, logPath) {
		if l[0] == "stdout" {
			stdout = append(stdout, l[1]+"|"+l[2])
		} else {
			stderr = append(stderr, l[1]+"|"+l[2])
		}
	}
	want := []string{"F|hello", "F|", "F|world", "P|" + long[:maxLogLine], "F|" + long[maxLogLine:], "P|no newline"}
	if strings.Join(stdout, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout lines %.200q, want %.200q", stdout, want)
	}
	if strings.Join(stderr, "\n") != "F|oops" {
		t.Errorf("stderr lines %q", stderr)
	}
}

// TestRequestsTheMonitorRefuses: what is not a request gets an error or
// a closed connection, and the monitor goes on answering.
func TestRequestsTheMonitorRefuses(t *testing.T) {
	f := setup(t)
	for _, line := range []string{
		`{"op":"pid","id":"x"}`, // not running: an error, a good request
		`{"op":`, `[]`, `{"op":{"nested":1}}`, `{"op":"pid","id":"\u0000"}`, `{"op":"kill","id":"x","signal":1e3}`,
		`{"op":"kill","id":"x","signal":99}`, `{"op":"nope"}`, `{"op":"start"}`, `{"op":"start","id":"a","bundle":"/nonexistent"}`,
		strings.Repeat("x", 70<<10),
	} {
		resp, err := rawCall(f.monDir, line)
		if err == nil && resp.Error == "" {
			t.Errorf("%.60q: answered %+v, want an error", line, resp)
		}
	}
	if !f.client.Alive(context.Background()) {
		t.Fatal("the monitor died of a bad request")
	}
}

// rawCall sends one line to the monitor and reads its answer.
func rawCall(dir, line string) (Response, error) {
	d, err := os.Open(dir)
	if err != nil {
		return Response{}, err
	}
	defer d.Close()
	conn, err := net.Dial("unix", fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), SocketName))
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return Response{}, err
	}
	var resp Response
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if n == 0 {
		return Response{}, err
	}
	if err := json.Unmarshal(buf[:n], &resp); err != nil {
		return Response{}, err
	}
	return resp, nil
}

// BenchmarkLogCopy is the monitor's log writer at work: a container's
// stdout of 100-byte lines (8 MB an iteration) turned into CRI log lines
// in its log file, the container's start and exit included.
func BenchmarkLogCopy(b *testing.B) {
	f := setup(b)
	const lines = 80000
	b.SetBytes(lines * 100)
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench%d", i)
		i++
		bundle := f.bundle(b, id, fmt.Sprintf("yes %s | head -n %d", strings.Repeat("x", 99), lines))
		logPath := filepath.Join(b.TempDir(), id+".log")
		if _, err := f.client.Start(context.Background(), Request{ID: id, Bundle: bundle, Log: logPath}); err != nil {
			b.Fatal(err)
		}
		waitExit(b, bundle)
	}
}

// TestStartOutlivesItsCaller: a caller that gives up on a start (crid's
// deadline) leaves the monitor serving and the container started and
// recorded; the retried start finds it.
func TestStartOutlivesItsCaller(t *testing.T) {
	f := setup(t)
	b := f.bundle(t, "hasty", "sleep 0.3; exit 3")
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := f.client.Start(ctx, Request{ID: "hasty", Bundle: b}); err == nil {
		t.Fatal("a start answered within 1 ms: the deadline did not cut it short")
	}
	if e := waitExit(t, b); e.ExitCode != 3 {
		t.Fatalf("exit %+v", e)
	}
	if !f.client.Alive(context.Background()) {
		t.Fatal("the monitor died when its caller left")
	}
	if _, err := f.client.Start(context.Background(), Request{ID: "hasty", Bundle: b}); err == nil || !strings.Contains(err.Error(), "ran already") {
		t.Errorf("start after the exit: %v", err)
	}
}
