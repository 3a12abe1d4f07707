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
)

var cridBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration: skipping every test: crid must run as root (run them with sudo, or through hack/test.sh as root)")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "crid-integration-")
	if err != nil {
		panic(err)
	}
	// Readable by all: one test runs crid as nobody to see it refuse.
	os.Chmod(dir, 0o755)
	cridBin = filepath.Join(dir, "crid")
	for bin, pkg := range map[string]string{cridBin: "../../cmd/crid", filepath.Join(dir, "crid-monitor"): "../../cmd/crid-monitor"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Printf("build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: crid refuses to start without it")
	}
}

// daemon is one crid process started by a test.
type daemon struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	log    *bytes.Buffer
	done   chan error
}

// paths gives a test its own root, runroot and socket under dir.
func args(dir string, extra ...string) []string {
	return append([]string{
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "run"),
		"--listen", filepath.Join(dir, "sock", "crid.sock"),
		"--cni-config-dir", filepath.Join(dir, "net.d"),
		"--config", writeConfig(dir),
	}, extra...)
}

// writeConfig turns metrics off unless a test asks for them, and keeps
// NRI's socket and plugin directories under dir: tests run side by side
// and must not fight over a port or a socket.
func writeConfig(dir string) string {
	p := filepath.Join(dir, "crid.toml")
	if _, err := os.Stat(p); err != nil {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(p, []byte("[metrics]\naddress = \"\"\n"+nriConfig(dir)), 0o644)
	}
	return p
}

// nriConfig is the [nri] table of a test daemon in dir: on, as by
// default, with its socket and plugin directories of its own.
func nriConfig(dir string) string {
	return fmt.Sprintf("[nri]\nsocket_path = %q\nplugin_path = %q\nplugin_config_path = %q\n",
		nriSocket(dir), filepath.Join(dir, "nri-plugins"), filepath.Join(dir, "nri-conf.d"))
}

func nriSocket(dir string) string { return filepath.Join(dir, "sock", "nri.sock") }

func start(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{dir: dir, socket: filepath.Join(dir, "sock", "crid.sock"), log: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(cridBin, args(dir, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop(t, syscall.SIGKILL)
		detachMountsUnder(dir)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return d
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("crid exited at start: %v\n%s", err, d.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("crid did not serve %s in 10s\n%s", d.socket, d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop signals crid and returns how it exited; stopping twice is harmless.
func (d *daemon) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	d.cmd.Process.Signal(sig)
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("crid did not exit on %v\n%s", sig, d.log)
		return nil
	}
}

func (d *daemon) client(t *testing.T) runtime.RuntimeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn)
}

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
	requireRoot(t)
	d := start(t, t.TempDir())
	fi, err := os.Stat(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("socket owned by %d:%d, want root", st.Uid, st.Gid)
	}
	v, err := d.client(t).Version(context.Background(), &runtime.VersionRequest{})
	if err != nil || v.RuntimeName != "crid" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version: %+v, %v", v, err)
	}
}

func TestCrictlSeesCrid(t *testing.T) {
	requireRoot(t)
	crictl, err := exec.LookPath("crictl")
	if err != nil {
		t.Fatal("crictl is not on PATH: hack/install-deps.sh installs it")
	}
	dir := t.TempDir()
	d := start(t, dir)
	endpoint := "unix://" + d.socket
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
	requireRoot(t)
	dir := t.TempDir()
	first := start(t, dir)
	pid := fmt.Sprint(first.cmd.Process.Pid)

	// Same root, other socket: the lock refuses.
	second := exec.Command(cridBin, args(dir, "--listen", filepath.Join(t.TempDir(), "other.sock"))...)
	out := runCrid(t, second)
	if !strings.Contains(out, "in use by process "+pid) || !strings.Contains(out, "crid.lock") {
		t.Errorf("same root: %s", out)
	}
	// Other root and runroot, same socket: the live socket refuses.
	other := t.TempDir()
	third := exec.Command(cridBin, "--root", filepath.Join(other, "root"), "--runroot", filepath.Join(other, "run"),
		"--listen", first.socket, "--config", writeConfig(other))
	out = runCrid(t, third)
	if !strings.Contains(out, "served by live process "+pid) {
		t.Errorf("same socket: %s", out)
	}
	// The first is unharmed.
	if _, err := first.client(t).Version(context.Background(), &runtime.VersionRequest{}); err != nil {
		t.Fatalf("first crid broken by the refused ones: %v", err)
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			d := start(t, t.TempDir())
			if err := d.stop(t, sig); err != nil {
				t.Fatalf("exit after %v: %v\n%s", sig, err, d.log)
			}
			if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
				t.Errorf("socket left behind: %v", err)
			}
			if !strings.Contains(d.log.String(), "crid stopped") {
				t.Errorf("no orderly stop in the log:\n%s", d.log)
			}
		})
	}
}

func TestRestartAfterKill9(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	d := start(t, dir)
	d.stop(t, syscall.SIGKILL)
	if _, err := os.Stat(d.socket); err != nil {
		t.Fatalf("expected the killed crid to leave its socket: %v", err)
	}
	// The lock went with the process and the stale socket is replaced.
	again := start(t, dir)
	if _, err := again.client(t).Version(context.Background(), &runtime.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(again.log.String(), "Removing stale socket") {
		t.Errorf("the stale socket was not reported:\n%s", again.log)
	}
}

func TestRefusals(t *testing.T) {
	requireRoot(t)
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
			cmd:  exec.Command(cridBin, args(t.TempDir(), "--root", aFile)...),
			want: []string{"root dir " + aFile + " is unusable"},
		},
		{
			name: "socket path is a regular file",
			cmd:  exec.Command(cridBin, args(t.TempDir(), "--listen", notSocket)...),
			want: []string{notSocket + " exists and is not a socket"},
		},
		{
			name: "bad flag value",
			cmd:  exec.Command(cridBin, args(t.TempDir(), "--log-level", "loud")...),
			want: []string{"log_level", "loud"},
		},
		{
			name: "systemd cgroup driver",
			cmd: func() *exec.Cmd {
				d := t.TempDir()
				os.WriteFile(filepath.Join(d, "crid.toml"), []byte("[runtime]\ncgroup_driver = \"systemd\"\n[metrics]\naddress = \"\"\n"+nriConfig(d)), 0o644)
				return exec.Command(cridBin, args(d)...)
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
	requireRoot(t)
	dir := t.TempDir()
	addr := freeLoopbackAddr(t)
	os.WriteFile(filepath.Join(dir, "crid.toml"), []byte(fmt.Sprintf("[metrics]\naddress = %q\n", addr)+nriConfig(dir)), 0o644)
	start(t, dir)
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

// detachMountsUnder lazily unmounts what a failed test left mounted below
// dir (pinned namespaces, /dev/shm), so its temporary dir can be removed
// and the next test starts clean.
func detachMountsUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}
