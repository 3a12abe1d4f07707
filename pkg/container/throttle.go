package container

import (
	"context"
	"time"

	"github.com/crid-dev/crid/pkg/logctx"
)

// Throttling is when CPU throttling is worth telling. Throttling is
// latency without utilization: a container whose quota runs out in most
// CFS periods answers slowly while its CPU use looks capped, not high.
type Throttling struct {
	// Window is how often each running container's CPU accounting is
	// read; zero turns the watch off.
	Window time.Duration
	// Share of a window's periods throttled at which a line is logged
	// (once per window per container); the metrics are kept whatever it is.
	Share float64
}

// cpuSample is a container's CPU accounting at the last window.
type cpuSample struct{ periods, throttled, throttledNanos, usageNanos uint64 }

// watchThrottling reads every running container's CPU accounting each
// window until ctx ends, and records what was throttled in it.
func (m *Manager) watchThrottling(ctx context.Context) {
	defer close(m.throttleDone)
	t := m.opts.Throttling
	if t.Window <= 0 {
		return
	}
	last := map[string]cpuSample{}
	tick := time.NewTicker(t.Window)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		seen := map[string]bool{}
		// The records as the manager holds them (never changed in place):
		// a copy of each, raw request and all, was 3.7 ms a window with
		// 2250 containers.
		var running []*Container
		m.records.Each(func(c *Container) {
			if c.State == Running {
				running = append(running, c)
			}
		})
		for _, c := range running {
			cg, err := m.opts.Cgroups.Manager(c.Cgroup)
			if err != nil {
				continue
			}
			cpu, err := cg.CPUStats()
			if err != nil {
				continue
			}
			seen[c.ID] = true
			now := cpuSample{cpu.Periods, cpu.Throttled, cpu.ThrottledNanos, cpu.UsageNanos}
			prev, ok := last[c.ID]
			last[c.ID] = now
			if !ok || now.periods < prev.periods {
				continue // the first look, or counters reset
			}
			m.throttled(ctx, c, prev, now)
		}
		for id := range last {
			if !seen[id] {
				delete(last, id)
			}
		}
	}
}

// throttled records one window of a container's CPU accounting.
func (m *Manager) throttled(ctx context.Context, c *Container, prev, now cpuSample) {
	periods := now.periods - prev.periods
	if periods == 0 {
		return // no quota, or idle: nothing to throttle
	}
	throttled := now.throttled - prev.throttled
	held := time.Duration(now.throttledNanos - prev.throttledNanos)
	share := float64(throttled) / float64(periods)
	m.opts.Metrics.Throttled(series(c), throttled, held, share)
	if share < m.opts.Throttling.Share || throttled == 0 {
		return
	}
	var quota int64
	var period uint64
	if r := c.Resources; r != nil {
		quota, period = r.CPUQuota, r.CPUPeriod
	}
	logctx.From(withIDs(ctx, c)).Info("Container CPU-throttled",
		"level", "warning", "name", c.Name,
		"throttledPeriods", throttled, "periods", periods, "share", share,
		"throttledTime", held, "cpuUsed", time.Duration(now.usageNanos-prev.usageNanos),
		"window", m.opts.Throttling.Window, "quotaMicros", quota, "periodMicros", period,
		"cpus", quotaCPUs(quota, period))
}

// quotaCPUs is a CFS quota in CPUs, as a pod spec's limit says it; 0 for
// none.
func quotaCPUs(quota int64, period uint64) float64 {
	if quota <= 0 || period == 0 {
		return 0
	}
	return float64(quota) / float64(period)
}
