package container

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/metrics"
)

// syncBuffer collects log lines from the watch's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) line(_, args string) {
	s.mu.Lock()
	s.b.WriteString(args + "\n")
	s.mu.Unlock()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestThrottlingIsMeasuredAndTold(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	f := &fixture{n: newNode(), dir: t.TempDir(),
		ctx:        klog.NewContext(context.Background(), funcr.New(logs.line, funcr.Options{})),
		metrics:    metrics.New(reg),
		throttling: Throttling{Window: 20 * time.Millisecond, Share: 0.25}}
	f.open(t)
	p := params("busy")
	p.Labels = map[string]string{"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "web-1"}
	p.Resources = &cgroups.Resources{CPUQuota: 50000, CPUPeriod: 100000}
	d, err := f.Prepare(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Commit(t.Context(), d.Container.ID, spec(), p.Resources)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	share := func() float64 { return gathered(t, reg, "crid_container_cpu_throttled_ratio") }
	// A quiet window, then one throttled in 70 of 100 periods.
	f.n.SetStats(c.Cgroup, cgroups.Stats{CPU: cgroups.CPUStats{Periods: 100, Throttled: 5, ThrottledNanos: 1e8, UsageNanos: 5e9}})
	time.Sleep(60 * time.Millisecond) // a first sample is taken
	f.n.SetStats(c.Cgroup, cgroups.Stats{CPU: cgroups.CPUStats{Periods: 200, Throttled: 75, ThrottledNanos: 2.1e9, UsageNanos: 10e9}})
	waitFor(t, func() bool { return share() > 0.69 && share() < 0.71 })
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"msg"="Container CPU-throttled"`) })
	line := logs.String()
	for _, want := range []string{`"throttledPeriods"=70`, `"periods"=100`, `"cpus"=0.5`, `"container"="` + c.ID + `"`, `"throttledTime"="2s"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %s", line, want)
		}
	}
	if periods := gathered(t, reg, "crid_container_cpu_throttled_periods_total"); periods != 70 {
		t.Errorf("throttled periods counter %v, want 70", periods)
	}
	// Removed, the container's series go.
	if err := f.Remove(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"crid_container_cpu_throttled_ratio", "crid_container_cpu_throttled_periods_total", "crid_container_cpu_throttled_seconds_total"} {
		if v := gathered(t, reg, name); v != -1 {
			t.Errorf("%s is still there after the removal: %v", name, v)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gathered is the value of the series of name for the container busy of
// pod shop/web-1, -1 when there is none.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] != "shop" || labels["pod"] != "web-1" || labels["container"] != "busy" {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}
