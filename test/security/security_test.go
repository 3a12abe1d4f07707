// Package security attacks crid as a hostile tenant would: only through
// the CRI API, with pod specs and images such a tenant could write. Each
// attack ends in a verdict: refused (crid said no, with InvalidArgument or
// FailedPrecondition, or the container never started), confined (it ran,
// and nothing outside the container changed), or escaped (something of
// the host's changed, or a request that must be refused was taken). After
// every attack the suite checks the host: no file planted in its root, a
// secret there never read, the kernel's core_pattern and crid's binaries
// unchanged, and crid still answering. It prints
// "N attacks, N refused, N confined, N escaped" and fails on any escape.
//
// Root only; without root every attack skips, saying why.
package security

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/harness"
	"github.com/crid-dev/crid/test/images/catalog"
)

var cridBin string

func TestMain(m *testing.M) { harness.Main(m, "security", "../..", &cridBin) }

type verdict int

const (
	refused verdict = iota
	confined
	escaped
)

func (v verdict) String() string { return [...]string{"refused", "confined", "escaped"}[v] }

// env is one crid, a busybox image, and what the host must keep.
type env struct {
	t       *testing.T
	d       *harness.Daemon
	rt      runtime.RuntimeServiceClient
	img     runtime.ImageServiceClient
	reg     *harness.Registry
	dir     string
	logDir  string
	busybox v1.Layer
	image   string // plain busybox
	n       int    // pods made, for unique names

	secretPath, secret string // in the host's /, never to be read
	corePattern        string
	binaries           map[string]string // path -> sha256
}

// escapeMarker is what attacks try to create in the host's /.
const escapeMarker = "crid-security-escaped"

func newEnv(t *testing.T) *env {
	harness.RequireRoot(t)
	e := &env{t: t, dir: t.TempDir()}
	e.reg = harness.StartRegistry(t, "", "")
	var err error
	if e.busybox, err = catalog.BusyboxLayer("/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	harness.PodNet(t, e.dir, 41)
	e.d = harness.Start(t, cridBin, e.dir)
	e.rt, e.img = e.d.Clients(t)
	t.Cleanup(func() { harness.RemoveAllPods(e.rt) })
	e.logDir = filepath.Join(e.dir, "logs")
	e.image = e.buildImage("busybox", v1.Config{})

	buf := make([]byte, 16)
	rand.Read(buf)
	e.secret = "secret-" + hex.EncodeToString(buf)
	e.secretPath = fmt.Sprintf("/crid-security-secret-%d", os.Getpid())
	if err := os.WriteFile(e.secretPath, []byte(e.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(e.secretPath) })
	data, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	e.corePattern = string(data)
	e.binaries = map[string]string{}
	for _, b := range []string{cridBin, filepath.Join(filepath.Dir(cridBin), "crid-monitor"), filepath.Join(filepath.Dir(cridBin), "crid-podmon")} {
		e.binaries[b] = hashFile(t, b)
	}
	return e
}

func hashFile(t *testing.T, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// hostChanged says what of the host an attack changed, "" for nothing.
func (e *env) hostChanged(logs string) string {
	var what []string
	if matches, _ := filepath.Glob("/" + escapeMarker + "*"); len(matches) > 0 {
		what = append(what, fmt.Sprintf("%v was made in the host's /", matches))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
	if strings.Contains(logs, e.secret) {
		what = append(what, "the host's secret was read")
	}
	if data, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); string(data) != e.corePattern {
		what = append(what, fmt.Sprintf("core_pattern is now %q", data))
		os.WriteFile("/proc/sys/kernel/core_pattern", []byte(e.corePattern), 0)
	}
	for b, sum := range e.binaries {
		if hashFile(e.t, b) != sum {
			what = append(what, b+" was overwritten")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.rt.Version(ctx, &runtime.VersionRequest{}); err != nil {
		what = append(what, fmt.Sprintf("crid no longer answers: %v", err))
	}
	return strings.Join(what, "; ")
}

// buildImage pushes busybox plus layers as name, pulls it through crid,
// and answers with its reference.
func (e *env) buildImage(name string, cfg v1.Config, layers ...[]catalog.Entry) string {
	e.t.Helper()
	ls := []v1.Layer{e.busybox}
	for _, entries := range layers {
		l, err := catalog.Layer(entries)
		if err != nil {
			e.t.Fatal(err)
		}
		ls = append(ls, l)
	}
	if cfg.Env == nil {
		cfg.Env = []string{"PATH=/bin"}
	}
	if cfg.Cmd == nil {
		cfg.Cmd = []string{"sh"}
	}
	img, err := catalog.Assemble(cfg, ls...)
	if err != nil {
		e.t.Fatal(err)
	}
	ref := e.reg.Addr + "/" + name + ":attack"
	harness.Push(e.t, ref, img)
	if _, err := e.img.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		e.t.Fatal(err)
	}
	return ref
}

// pod runs a pod of the suite's, edited by edit, and answers with what
// stops and removes it.
func (e *env) pod(edit func(*runtime.PodSandboxConfig)) (string, *runtime.PodSandboxConfig, func(), error) {
	e.n++
	cfg := harness.PodConfig(fmt.Sprintf("attack-%d", e.n), func(c *runtime.PodSandboxConfig) {
		c.LogDirectory = e.logDir
		if edit != nil {
			edit(c)
		}
	})
	resp, err := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", cfg, nil, err
	}
	id := resp.PodSandboxId
	remove := func() {
		ctx := context.Background()
		e.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id})
		e.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id})
	}
	return id, cfg, remove, nil
}

// container creates and starts a container running script in a pod,
// edited by edit; it answers with its ID (empty when it was not created)
// and the error of whichever step failed.
func (e *env) container(pod string, podCfg *runtime.PodSandboxConfig, image, script string, edit func(*runtime.ContainerConfig)) (string, error) {
	e.n++
	name := fmt.Sprintf("ctr-%d", e.n)
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: image},
		Command: []string{"sh", "-c", script}, LogPath: name + ".log",
	}
	if edit != nil {
		edit(cfg)
	}
	ctx := context.Background()
	resp, err := e.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: cfg})
	if err != nil {
		return "", err
	}
	if _, err := e.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		return resp.ContainerId, err
	}
	return resp.ContainerId, nil
}

// runOnce runs script in a container of a pod of its own (either edited
// by its edit, when not nil) until it exits, removes the pod, and answers
// with the container's log, or the error of the step that failed.
func (e *env) runOnce(podEdit func(*runtime.PodSandboxConfig), image, script string, ctrEdit func(*runtime.ContainerConfig)) (string, error) {
	pod, cfg, remove, err := e.pod(podEdit)
	if err != nil {
		return "", err
	}
	defer remove()
	id, err := e.container(pod, cfg, image, script, ctrEdit)
	if err != nil {
		return "", err
	}
	return e.wait(id), nil
}

// wait waits for a container to exit and answers with its log.
func (e *env) wait(id string) string {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := e.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			e.t.Fatal(err)
		}
		if resp.Status.State == runtime.ContainerState_CONTAINER_EXITED || time.Now().After(deadline) {
			data, _ := os.ReadFile(resp.Status.LogPath)
			return string(data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exec runs a command in a running container.
func (e *env) exec(id, script string) (string, error) {
	resp, err := e.rt.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", script}, Timeout: 30})
	if err != nil {
		return "", err
	}
	return string(resp.Stdout) + string(resp.Stderr), nil
}

// rootfs is where crid mounted a created container's root.
func (e *env) rootfs(id string) string {
	e.t.Helper()
	resp, err := e.rt.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		e.t.Fatal(err)
	}
	var info struct {
		Bundle string `json:"bundle"`
	}
	json.Unmarshal([]byte(resp.Info["info"]), &info)
	return filepath.Join(info.Bundle, "rootfs")
}

// isRefusal tells whether err is crid saying no to bad input.
func isRefusal(err error) bool {
	c := status.Code(err)
	return c == codes.InvalidArgument || c == codes.FailedPrecondition
}

// attack is one thing a hostile tenant tries. run answers with the
// verdict as it saw it, and what happened; the host is checked after.
type attack struct {
	name string
	run  func(e *env) (verdict, string)
}

func TestHostileTenants(t *testing.T) {
	e := newEnv(t)
	counts := map[verdict]int{}
	var report bytes.Buffer
	for _, a := range attacks() {
		t.Run(a.name, func(t *testing.T) {
			v, detail := a.run(e)
			if changed := e.hostChanged(detail); changed != "" {
				v, detail = escaped, changed+" ("+detail+")"
			}
			counts[v]++
			fmt.Fprintf(&report, "%-9s %s: %s\n", v, a.name, detail)
			if v == escaped {
				t.Errorf("escaped: %s", detail)
			} else {
				t.Logf("%s: %s", v, detail)
			}
		})
	}
	fmt.Print(report.String())
	total := counts[refused] + counts[confined] + counts[escaped]
	fmt.Printf("%d attacks, %d refused, %d confined, %d escaped\n", total, counts[refused], counts[confined], counts[escaped])
}
