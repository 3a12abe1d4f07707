package cgroupstest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/oci/generate"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/reexec"
	"github.com/crid-dev/crid/test/harness"
	"github.com/crid-dev/crid/test/images/catalog"
)

// guestPodmon is where qemu.sh puts crid-podmon in the guest.
const guestPodmon = "/bin/crid-podmon"

// TestMonitorLaunchesIntoTheCgroup: crid-podmon starts a container from
// its start plan, which on v2 has the init born in the container's cgroup
// (clone3's CLONE_INTO_CGROUP) and on v1 has it join each hierarchy
// itself; either way the container runs in its cgroup and its exit is
// recorded. The container is this binary, as a sleeping helper.
func TestMonitorLaunchesIntoTheCgroup(t *testing.T) {
	m, h := newCgroup(t, &cgroups.Resources{})
	// In the guest: qemu.sh's static crid-podmon, and the container is
	// this (static) binary as a sleeping helper. On a host: crid-podmon
	// built here, and busybox's sleep.
	podmon := guestPodmon
	cfg := &runtime.ContainerConfig{Command: []string{"/helper"}, Envs: []*runtime.KeyValue{{Key: helperEnv, Value: []byte("sleep")}}}
	var root string
	if _, err := os.Stat(podmon); err == nil {
		root = helperRoot(t)
	} else {
		podmon = filepath.Join(t.TempDir(), "crid-podmon")
		if err := harness.BuildPodmon("../..", podmon); err != nil {
			t.Fatal(err)
		}
		root = catalog.BusyboxRoot(t)
		cfg = &runtime.ContainerConfig{Command: []string{"sleep", "1000"}}
	}
	mon, err := reexec.SealFile(podmon)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	helper, err := reexec.Seal()
	if err != nil {
		t.Fatal(err)
	}
	defer helper.Close()
	ctx := context.Background()
	client, err := monitor.Ensure(ctx, monitor.Binaries{Monitor: mon, Helper: helper}, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Shutdown(ctx)

	spec, err := generate.Spec(generate.Input{
		Container: cfg,
		Sandbox:   &runtime.PodSandboxConfig{},
		Image:     &v1.ConfigFile{Config: v1.Config{Env: []string{"PATH=/bin"}}},
		Rootfs:    root, CgroupsPath: m.Path(), DaemonCaps: generate.DefaultCapabilities, CgroupV2: h.Mode == cgroups.Unified,
	})
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := monitor.WriteStartPlan(bundle, spec, m); err != nil {
		t.Fatal(err)
	}
	var plan monitor.StartPlan
	if data, err := os.ReadFile(filepath.Join(bundle, monitor.StartPlanFile)); err != nil || json.Unmarshal(data, &plan) != nil {
		t.Fatalf("start plan: %v %s", err, data)
	}
	if unified := h.Mode == cgroups.Unified; (plan.CgroupDir != "") != unified {
		t.Fatalf("plan %+v: want a cgroup dir to be born in exactly on v2 (%v)", plan, unified)
	}
	pid, err := client.Start(ctx, monitor.Request{ID: "launched", Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	pids, err := m.Pids()
	if err != nil || !slices.Contains(pids, pid) {
		t.Errorf("the container (pid %d) is not in its cgroup: %v, %v", pid, pids, err)
	}
	if err := client.Kill(ctx, "launched", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		e, ok, err := monitor.ReadExit(bundle)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if e.Pid != pid || e.ExitCode != 137 {
				t.Errorf("exit %+v, want pid %d killed (137)", e, pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no exit recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// helperRoot is a container root holding this binary as /helper (a
// static one: the guest's) and the mount points its spec needs.
func helperRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "helper"), self, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	return root
}
