// Package harness runs crid as an operator would, for the root test
// suites (test/integration, test/security): it builds the binaries, starts
// daemons with roots, sockets and pod networks of their own, a loopback
// registry, and pods, and stops and cleans every one of them when the test
// ends. Nothing here sends traffic anywhere but loopback and the tests'
// own pods.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/images/catalog"
)

// Build compiles crid, crid-monitor and crid-podmon into dir (readable by
// all) from the module whose root is repo, with the build tags given, and
// answers with crid's path.
func Build(repo, dir string, tags ...string) (string, error) {
	crid := filepath.Join(dir, "crid")
	for _, b := range []struct {
		out, pkg string
		tags     []string
		ldflags  string
	}{
		{crid, "./cmd/crid", tags, ""},
		// Static, as hack/build.sh links it.
		{filepath.Join(dir, "crid-monitor"), "./cmd/crid-monitor", append([]string{"netgo", "osusergo"}, tags...), "-linkmode external -extldflags -static"},
	} {
		cmd := exec.Command("go", "build", "-tags", strings.Join(b.tags, ","), "-ldflags", b.ldflags, "-o", b.out, b.pkg)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	if err := BuildPodmon(repo, filepath.Join(dir, "crid-podmon")); err != nil {
		return "", err
	}
	return crid, nil
}

// BuildPodmon compiles the C pod monitor (cmd/crid-podmon) to out, as
// hack/build.sh does.
func BuildPodmon(repo, out string) error {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	cmd := exec.Command(cc, "-O2", "-Wall", "-Wextra", "-Werror", "-static", "-o", out, "cmd/crid-podmon/podmon.c", "cmd/crid-podmon/infra.c")
	cmd.Dir = repo
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build crid-podmon: %v\n%s", err, msg)
	}
	return nil
}

// RequireRoot skips a test that needs root, saying why.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: crid refuses to start without it")
	}
}

// Daemon is one crid process started by a test.
type Daemon struct {
	Cmd    *exec.Cmd
	Dir    string
	Socket string
	Log    *bytes.Buffer
	Done   chan error
}

// Args gives a daemon its own root, runroot, socket and CNI configs
// under dir.
func Args(dir string, extra ...string) []string {
	return append([]string{
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "run"),
		"--listen", filepath.Join(dir, "sock", "crid.sock"),
		"--cni-config-dir", filepath.Join(dir, "net.d"),
		"--config", WriteConfig(dir),
	}, extra...)
}

// WriteConfig turns metrics off unless a test asks for them, and keeps
// NRI's socket and plugin directories under dir: tests run side by side
// and must not fight over a port or a socket.
func WriteConfig(dir string) string {
	p := filepath.Join(dir, "crid.toml")
	if _, err := os.Stat(p); err != nil {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(p, []byte("[metrics]\naddress = \"\"\n"+NRIConfig(dir)), 0o644)
	}
	return p
}

// NRIConfig is the [nri] table of a test daemon in dir: on, as by
// default, with its socket and plugin directories of its own.
func NRIConfig(dir string) string {
	return fmt.Sprintf("[nri]\nsocket_path = %q\nplugin_path = %q\nplugin_config_path = %q\n",
		NRISocket(dir), filepath.Join(dir, "nri-plugins"), filepath.Join(dir, "nri-conf.d"))
}

// NRISocket is the NRI socket of a test daemon in dir.
func NRISocket(dir string) string { return filepath.Join(dir, "sock", "nri.sock") }

// Start runs the crid at bin on dir and waits until it serves; the test's
// end kills it and detaches what it left mounted under dir.
func Start(t testing.TB, bin, dir string, extra ...string) *Daemon {
	t.Helper()
	return StartEnv(t, bin, dir, nil, extra...)
}

// StartEnv is Start with variables added to crid's environment.
func StartEnv(t testing.TB, bin, dir string, env []string, extra ...string) *Daemon {
	t.Helper()
	return StartCmd(t, bin, dir, func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, env...) }, extra...)
}

// StartCmd is Start with crid's command changed by edit before it runs.
func StartCmd(t testing.TB, bin, dir string, edit func(*exec.Cmd), extra ...string) *Daemon {
	t.Helper()
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "sock", "crid.sock"), Log: &bytes.Buffer{}, Done: make(chan error, 1)}
	d.Cmd = exec.Command(bin, Args(dir, extra...)...)
	d.Cmd.Env = os.Environ()
	d.Cmd.Stdout, d.Cmd.Stderr = d.Log, d.Log
	edit(d.Cmd)
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.Done <- d.Cmd.Wait() }()
	t.Cleanup(func() {
		d.Stop(t, syscall.SIGKILL)
		DetachMountsUnder(dir)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", d.Socket); err == nil {
			c.Close()
			return d
		}
		select {
		case err := <-d.Done:
			d.Done <- err
			t.Fatalf("crid exited at start: %v\n%s", err, d.Log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("crid did not serve %s in 10s\n%s", d.Socket, d.Log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop signals crid and returns how it exited; stopping twice is harmless.
func (d *Daemon) Stop(t testing.TB, sig syscall.Signal) error {
	t.Helper()
	d.Cmd.Process.Signal(sig)
	select {
	case err := <-d.Done:
		d.Done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("crid did not exit on %v\n%s", sig, d.Log)
		return nil
	}
}

// Clients connects to the daemon's CRI socket for the test's length.
func (d *Daemon) Clients(t testing.TB) (runtime.RuntimeServiceClient, runtime.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
}

// Client is the daemon's runtime service.
func (d *Daemon) Client(t testing.TB) runtime.RuntimeServiceClient {
	t.Helper()
	rt, _ := d.Clients(t)
	return rt
}

// DetachMountsUnder lazily unmounts what a failed test left mounted below
// dir (pinned namespaces, /dev/shm), so its temporary dir can be removed
// and the next test starts clean.
func DetachMountsUnder(dir string) {
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

// PodNet writes a bridge network of the test's own (bridge name and
// subnet unique to n) into dir/net.d, with extra plugins appended. The
// bridge plugin never removes the bridge it made: the test's end does,
// after the crid it starts later has stopped (cleanups run last first).
func PodNet(t testing.TB, dir string, n int, extra ...string) {
	t.Helper()
	t.Cleanup(func() { exec.Command("ip", "link", "del", fmt.Sprintf("critest%d", n)).Run() })
	plugins := []string{
		fmt.Sprintf(`{"type":"bridge","bridge":"critest%d","isGateway":true,"ipMasq":false,"hairpinMode":true,
		  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.%d.0.0/24"}]],"dataDir":"%s/ipam"}}`, n, 200+n, dir),
		`{"type":"portmap","capabilities":{"portMappings":true}}`,
	}
	plugins = append(plugins, extra...)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"crid-it-%d","plugins":[%s]}`, n, strings.Join(plugins, ","))
	os.MkdirAll(filepath.Join(dir, "net.d"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "net.d", "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Registry is a Debian docker-registry on a free loopback port, started by
// a test and stopped by PID when it ends.
type Registry struct {
	Addr    string // 127.0.0.1:port
	Storage string // its filesystem storage root
}

// StartRegistry runs docker-registry; with user set it demands basic auth.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry is not installed: hack/install-deps.sh test installs it")
	}
	dir := t.TempDir()
	addr := FreeLoopbackAddr(t)
	r := &Registry{Addr: addr, Storage: filepath.Join(dir, "storage")}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", r.Storage, addr)
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600)
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: crid-test\n    path: %s\n", htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	cmd := exec.Command(bin, "serve", cfgPath)
	log, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", addr, err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BlobPath is where the registry's filesystem driver keeps a blob's data.
func (r *Registry) BlobPath(digest string) string {
	hex := digest[len("sha256:"):]
	return filepath.Join(r.Storage, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
}

// FreeLoopbackAddr is a 127.0.0.1 port nothing listens on right now.
func FreeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Push writes img to the registry at ref.
func Push(t testing.TB, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// PodConfig is a pod of the test namespace named name, with its own PID
// namespace per container, edited by edit.
func PodConfig(name string, edit func(*runtime.PodSandboxConfig)) *runtime.PodSandboxConfig {
	c := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "it", Uid: "uid-" + name},
		Hostname: name,
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// RunPod runs a pod, failing the test if it cannot.
func RunPod(t testing.TB, rt runtime.RuntimeServiceClient, c *runtime.PodSandboxConfig) string {
	t.Helper()
	resp, err := rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: c})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", c.Metadata.Name, err)
	}
	return resp.PodSandboxId
}

// RemovePod stops and removes a pod, failing the test if it cannot.
func RemovePod(t testing.TB, rt runtime.RuntimeServiceClient, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
}

// RemoveAllPods stops and removes every pod, for a test's cleanup before
// its crid stops: pods' monitors and containers outlive crid by design.
func RemoveAllPods(rt runtime.RuntimeServiceClient) {
	ctx := context.Background()
	pods, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id})
		rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id})
	}
}

// Main is a root suite's TestMain: without root every test skips, saying
// so; with it, crid is built from the module at repo (relative to the
// suite) into a directory readable by all (a test runs crid as nobody to
// see it refuse), *bin names it, the tests run, and the directory goes.
func Main(m *testing.M, suite, repo string, bin *string) {
	if os.Geteuid() != 0 {
		fmt.Printf("%s: skipping every test: crid must run as root (run them with sudo, or through hack/test.sh as root)\n", suite)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "crid-"+suite+"-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	if *bin, err = Build(repo, dir); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Monitors are the pods' monitors of a test's crid working in a
// directory under dir: crid-podmon, or the Go monitor of crids before it
// (argv "crid monitor DIR").
func Monitors(dir string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && (strings.HasPrefix(string(cmd), "crid-podmon\x00") || strings.HasPrefix(string(cmd), "crid\x00monitor\x00")) && strings.Contains(string(cmd), dir) {
			out = append(out, pid)
		}
	}
	return out
}

// BusyboxImage is Debian's busybox as an image (PATH=/bin, sh).
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	base, err := catalog.BusyboxLayer("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	img, err := catalog.Assemble(v1.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}, base)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// PushBusybox pushes BusyboxImage to the registry at ref.
func PushBusybox(t testing.TB, ref string) {
	t.Helper()
	Push(t, ref, BusyboxImage(t))
}
