// Package integration runs the crid binary as an operator would, as root,
// and checks what it does to the machine: sockets, locks, signals, refusals.
// Without root every test skips and says so.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/harness"
)

var cridBin string

func TestMain(m *testing.M) { harness.Main(m, "integration", "../..", &cridBin) }

// runCrid runs crid to completion, expecting it to refuse, and returns what
// it said.
func runCrid(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.SysProcAttr = cmd.SysProcAttr
	out, err := c.CombinedOutput()
	if err == nil {
		t.Fatalf("crid %v started where it must refuse:\n%s", cmd.Args[1:], out)
	}
	return string(out)
}

func TestServesCRIOnASocketOnlyRootCanUse(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.Start(t, cridBin, t.TempDir())
	fi, err := os.Stat(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("socket owned by %d:%d, want root", st.Uid, st.Gid)
	}
	v, err := d.Client(t).Version(context.Background(), &runtime.VersionRequest{})
	if err != nil || v.RuntimeName != "crid" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version: %+v, %v", v, err)
	}
}

func TestCrictlSeesCrid(t *testing.T) {
	harness.RequireRoot(t)
	crictl, err := exec.LookPath("crictl")
	if err != nil {
		t.Fatal("crictl is not on PATH: hack/install-deps.sh installs it")
	}
	dir := t.TempDir()
	d := harness.Start(t, cridBin, dir)
	endpoint := "unix://" + d.Socket
	out, err := exec.Command(crictl, "--runtime-endpoint", endpoint, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "RuntimeName:  crid") || !strings.Contains(string(out), "RuntimeApiVersion:  v1") {
		t.Fatalf("crictl version: %v\n%s", err, out)
	}
	out, err = exec.Command(crictl, "--runtime-endpoint", endpoint, "info").CombinedOutput()
	if err != nil {
		t.Fatalf("crictl info: %v\n%s", err, out)
	}
	for _, want := range []string{`"type": "RuntimeReady"`, `"type": "NetworkReady"`, `"reason": "NetworkPluginNotReady"`, filepath.Join(dir, "net.d")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("crictl info lacks %s:\n%s", want, out)
		}
	}
}

func TestSecondCridOnTheSameRootNamesTheFirst(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	first := harness.Start(t, cridBin, dir)
	pid := fmt.Sprint(first.Cmd.Process.Pid)

	// Same root, other socket: the lock refuses.
	second := exec.Command(cridBin, harness.Args(dir, "--listen", filepath.Join(t.TempDir(), "other.sock"))...)
	out := runCrid(t, second)
	if !strings.Contains(out, "in use by process "+pid) || !strings.Contains(out, "crid.lock") {
		t.Errorf("same root: %s", out)
	}
	// Other root and runroot, same socket: the live socket refuses.
	other := t.TempDir()
	third := exec.Command(cridBin, "--root", filepath.Join(other, "root"), "--runroot", filepath.Join(other, "run"),
		"--listen", first.Socket, "--config", harness.WriteConfig(other))
	out = runCrid(t, third)
	if !strings.Contains(out, "served by live process "+pid) {
		t.Errorf("same socket: %s", out)
	}
	// The first is unharmed.
	if _, err := first.Client(t).Version(context.Background(), &runtime.VersionRequest{}); err != nil {
		t.Fatalf("first crid broken by the refused ones: %v", err)
	}
}

// Under a Type=notify unit crid says READY=1 once its socket serves, and
// STOPPING=1 on SIGTERM. (That what crid starts does not inherit
// NOTIFY_SOCKET is pkg/sdnotify's test.)
func TestNotifiesTheServiceManager(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	addr := filepath.Join(dir, "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", addr)
	cmd := exec.Command(cridBin, harness.Args(dir)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	defer harness.DetachMountsUnder(dir)
	receive := func() string {
		l.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 1024)
		n, err := l.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, &log)
		}
		return string(buf[:n])
	}
	if got := receive(); !strings.HasPrefix(got, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// Ready means served: the very next call gets its answer.
	c, err := grpc.NewClient("unix://"+filepath.Join(dir, "sock", "crid.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := runtime.NewRuntimeServiceClient(c).Version(ctx, &runtime.VersionRequest{}); err != nil {
		t.Fatalf("Version right after READY=1: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if got := receive(); got != "STOPPING=1\n" {
		t.Errorf("notification on SIGTERM %q, want STOPPING=1", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, &log)
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	harness.RequireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			d := harness.Start(t, cridBin, t.TempDir())
			if err := d.Stop(t, sig); err != nil {
				t.Fatalf("exit after %v: %v\n%s", sig, err, d.Log)
			}
			if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
				t.Errorf("socket left behind: %v", err)
			}
			if !strings.Contains(d.Log.String(), "crid stopped") {
				t.Errorf("no orderly stop in the log:\n%s", d.Log)
			}
		})
	}
}

func TestRestartAfterKill9(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	d := harness.Start(t, cridBin, dir)
	d.Stop(t, syscall.SIGKILL)
	if _, err := os.Stat(d.Socket); err != nil {
		t.Fatalf("expected the killed crid to leave its socket: %v", err)
	}
	// The lock went with the process and the stale socket is replaced.
	again := harness.Start(t, cridBin, dir)
	if _, err := again.Client(t).Version(context.Background(), &runtime.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(again.Log.String(), "Removing stale socket") {
		t.Errorf("the stale socket was not reported:\n%s", again.Log)
	}
}

func TestRefusals(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	aFile := filepath.Join(dir, "a-file")
	os.WriteFile(aFile, nil, 0o644)
	notSocket := filepath.Join(dir, "not-a-socket")
	os.WriteFile(notSocket, []byte("x"), 0o644)

	tests := []struct {
		name string
		cmd  *exec.Cmd
		want []string
	}{
		{
			name: "not root",
			cmd: func() *exec.Cmd {
				// No --config: nobody could not read one in a test's temp dir.
				c := exec.Command(cridBin, "--root", "/nonexistent/root", "--runroot", "/nonexistent/run")
				c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
				return c
			}(),
			want: []string{"must run as root", "effective uid is 65534"},
		},
		{
			name: "root dir is a file",
			cmd:  exec.Command(cridBin, harness.Args(t.TempDir(), "--root", aFile)...),
			want: []string{"root dir " + aFile + " is unusable"},
		},
		{
			name: "socket path is a regular file",
			cmd:  exec.Command(cridBin, harness.Args(t.TempDir(), "--listen", notSocket)...),
			want: []string{notSocket + " exists and is not a socket"},
		},
		{
			name: "bad flag value",
			cmd:  exec.Command(cridBin, harness.Args(t.TempDir(), "--log-level", "loud")...),
			want: []string{"log_level", "loud"},
		},
		{
			name: "systemd cgroup driver",
			cmd: func() *exec.Cmd {
				d := t.TempDir()
				os.WriteFile(filepath.Join(d, "crid.toml"), []byte("[runtime]\ncgroup_driver = \"systemd\"\n[metrics]\naddress = \"\"\n"+harness.NRIConfig(d)), 0o644)
				return exec.Command(cridBin, harness.Args(d)...)
			}(),
			want: []string{"systemd cgroup driver is not implemented", "cgroupfs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runCrid(t, tt.cmd)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestMetricsOnLoopback(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	addr := harness.FreeLoopbackAddr(t)
	os.WriteFile(filepath.Join(dir, "crid.toml"), []byte(fmt.Sprintf("[metrics]\naddress = %q\n", addr)+harness.NRIConfig(dir)), 0o644)
	harness.Start(t, cridBin, dir)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "crid_build_info{") {
		t.Fatalf("metrics: %d\n%.500s", resp.StatusCode, body)
	}
}
