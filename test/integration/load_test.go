package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crid-dev/crid/test/harness"
	"github.com/crid-dev/crid/test/load"
)

// TestLoadAndSoak is the bounded run of test/load: 10 pods of 3
// containers made at once while a PLEG-like poller lists and asks every
// container's status and probes exec in every running container, then
// 1000 container create/start/stop/remove cycles in one pod. Zero errors;
// crid's descriptors and goroutines come back to where they were, and
// its RSS does not grow over the soak by more than the Go heap's noise.
func TestLoadAndSoak(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	image := reg.Addr + "/busybox:it"
	harness.PushBusybox(t, image)
	dir := t.TempDir()
	harness.PodNet(t, dir, 37)
	addr := harness.FreeLoopbackAddr(t)
	os.WriteFile(filepath.Join(dir, "crid.toml"), []byte(fmt.Sprintf("[metrics]\naddress = %q\n%s", addr, harness.NRIConfig(dir))), 0o644)
	d := harness.Start(t, cridBin, dir)
	rt, img := d.Clients(t)
	cycles := 1000
	if testing.Short() {
		cycles = 100
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := load.Run(ctx, rt, img, load.Config{Pods: 10, Containers: 3, Image: image, LogDir: filepath.Join(dir, "logs"),
		Hold: 5 * time.Second, SoakCycles: cycles, Pid: d.Cmd.Process.Pid, Metrics: "http://" + addr + "/metrics"})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for m, s := range rep.RPCs {
		lines = append(lines, fmt.Sprintf("%-18s %6d calls %3d errors  p50 %9v  p99 %9v %s", m, s.Calls, s.Errors, s.P50.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), s.FirstError))
	}
	slices.Sort(lines)
	t.Logf("RPCs:\n%s", strings.Join(lines, "\n"))
	t.Logf("crid before %+v, after the load %+v, after %d soak cycles %+v; cycle median %v (first half) %v (second half)",
		rep.Before, rep.AfterLoad, rep.SoakCycles, rep.AfterSoak, rep.SoakFirstHalf.Round(time.Millisecond), rep.SoakSecondHalf.Round(time.Millisecond))
	if rep.Errors > 0 {
		t.Errorf("%d calls failed", rep.Errors)
	}
	if rep.AfterSoak.FDs > rep.Before.FDs+2 || rep.AfterSoak.Goroutines > rep.Before.Goroutines+2 {
		t.Errorf("crid grew: descriptors %d -> %d, goroutines %d -> %d; it holds:\n%s", rep.Before.FDs, rep.AfterSoak.FDs, rep.Before.Goroutines, rep.AfterSoak.Goroutines, openFiles(d.Cmd.Process.Pid))
	}
	if grow := rep.AfterSoak.RSSKiB - rep.AfterLoad.RSSKiB; grow > 16<<10 {
		t.Errorf("crid's RSS grew %d KiB over %d cycles", grow, rep.SoakCycles)
	}
}

// openFiles lists what a process's descriptors are, for a failure to say.
func openFiles(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	return strings.Join(out, "\n")
}
