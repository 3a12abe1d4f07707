package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// v2 manages a cgroup on the unified hierarchy.
type v2 struct {
	root            string
	path            string
	tolerateHugetlb bool
}

func (c *v2) Path() string { return c.path }
func (c *v2) Mode() Mode   { return Unified }
func (c *v2) dir() string  { return filepath.Join(c.root, c.path) }

// wantControllers are delegated down to every cgroup crid makes.
var wantControllers = []string{"cpu", "cpuset", "memory", "pids", "io", "hugetlb"}

// Create makes each missing level and enables the controllers crid uses in
// every ancestor's cgroup.subtree_control: a v2 cgroup has only the
// controllers its parent hands down.
func (c *v2) Create(r *Resources) error {
	cur := c.root
	for _, part := range strings.Split(strings.TrimPrefix(c.path, "/"), "/") {
		if err := enableControllers(cur); err != nil {
			return err
		}
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", cur, err)
		}
	}
	return c.Update(r)
}

func enableControllers(dir string) error {
	avail, err := readFile(dir, "cgroup.controllers")
	if err != nil {
		return err
	}
	enabled, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	var add []string
	for _, want := range wantControllers {
		if has(avail, want) && !has(enabled, want) {
			add = append(add, "+"+want)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeFile(dir, "cgroup.subtree_control", strings.Join(add, " "))
}

func has(list, word string) bool {
	for _, w := range strings.Fields(list) {
		if w == word {
			return true
		}
	}
	return false
}

func (c *v2) Update(r *Resources) error {
	if r == nil {
		return nil
	}
	if err := r.Validate(); err != nil {
		return err
	}
	d := c.dir()
	writes := []struct{ file, value string }{}
	add := func(file, value string) {
		if value != "" {
			writes = append(writes, struct{ file, value string }{file, value})
		}
	}
	if r.CPUShares != 0 {
		add("cpu.weight", strconv.FormatUint(ShareToWeight(r.CPUShares), 10))
	}
	if r.CPUQuota != 0 || r.CPUPeriod != 0 {
		quota := r.CPUQuota
		if quota == 0 {
			// Only the period changes: keep the quota in force.
			if cur, err := readFile(d, "cpu.max"); err == nil {
				if q, _, ok := strings.Cut(cur, " "); ok && q != "max" {
					quota, _ = strconv.ParseInt(q, 10, 64)
				}
			}
		}
		add("cpu.max", cpuMax(quota, r.CPUPeriod))
	}
	add("cpuset.cpus", r.CPUSetCPUs)
	add("cpuset.mems", r.CPUSetMems)
	if r.MemoryLimit != 0 {
		add("memory.max", limitString(r.MemoryLimit))
	}
	if sw := swapMax(r.MemoryLimit, r.MemorySwapLimit); sw != "" {
		if _, err := os.Stat(filepath.Join(d, "memory.swap.max")); err == nil {
			add("memory.swap.max", sw)
		}
	} else if r.MemoryLimit > 0 && r.MemorySwapLimit == 0 {
		if _, err := os.Stat(filepath.Join(d, "memory.swap.max")); err == nil {
			add("memory.swap.max", "0") // no swap asked for: none given
		}
	}
	if r.PidsLimit != 0 {
		add("pids.max", limitString(r.PidsLimit))
	}
	for _, h := range r.HugepageLimits {
		file := "hugetlb." + h.PageSize + ".max"
		_, err := os.Stat(filepath.Join(d, file))
		write, err := hugepageLimit(h, err == nil, c.tolerateHugetlb)
		if err != nil {
			return err
		}
		if write {
			add(file, strconv.FormatUint(h.Limit, 10))
		}
	}
	for _, k := range sortedKeys(r.Unified) {
		if _, err := os.Stat(filepath.Join(d, k)); err != nil {
			if asksNothing(k, r.Unified[k]) {
				continue
			}
			return fmt.Errorf("unified key %s: no such file in %s (is its controller enabled on this host?): %w", k, d, errdefs.ErrFailedPrecondition)
		}
		add(k, r.Unified[k])
	}
	for _, w := range writes {
		if err := writeFile(d, w.file, w.value); err != nil {
			return err
		}
	}
	// Device rules are set once, when the cgroup is made: a second
	// program would only narrow what the first allows.
	if r.Devices != nil {
		return attachDeviceProgram(d, r.Devices)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := keys(m)
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func (c *v2) Add(pid int) error {
	return writeFile(c.dir(), "cgroup.procs", strconv.Itoa(pid))
}

func (c *v2) JoinFiles() []string { return []string{filepath.Join(c.dir(), "cgroup.procs")} }

func (c *v2) CPUStats() (CPUStats, error) {
	kv, err := readKV(c.dir(), "cpu.stat")
	if err != nil {
		return CPUStats{}, err
	}
	return CPUStats{
		UsageNanos: kv["usage_usec"] * 1000, UserNanos: kv["user_usec"] * 1000, SystemNanos: kv["system_usec"] * 1000,
		Periods: kv["nr_periods"], Throttled: kv["nr_throttled"], ThrottledNanos: kv["throttled_usec"] * 1000,
	}, nil
}

func (c *v2) Stats() (*Stats, error) {
	d := c.dir()
	cpu, err := c.CPUStats()
	if err != nil {
		return nil, err
	}
	s := &Stats{Time: time.Now(), CPU: cpu}
	if s.Memory, err = c.memory(); err != nil {
		return nil, err
	}
	s.Pids.Current, _ = readUint(d, "pids.current")
	s.Pids.Limit, _ = readUint(d, "pids.max")
	return s, nil
}

func (c *v2) DetailedStats() (*Stats, error) {
	s, err := c.Stats()
	if err != nil {
		return nil, err
	}
	d := c.dir()
	m := &s.Memory
	m.MaxUsage, _ = readUint(d, "memory.peak")
	m.Swap, _ = readUint(d, "memory.swap.current")
	if ev, err := readKV(d, "memory.events"); err == nil {
		m.Failcnt = ev["max"]
	}
	if w, err := readUint(d, "cpu.weight"); err == nil && w >= 1 {
		s.Limits.CPUShares = WeightToShare(w)
	}
	if v, err := readFile(d, "cpu.max"); err == nil {
		if _, period, ok := strings.Cut(v, " "); ok {
			s.Limits.CPUPeriod, _ = strconv.ParseUint(period, 10, 64)
		}
	}
	s.Limits.SwapLimit, _ = readUint(d, "memory.swap.max")
	return s, nil
}

func (c *v2) memory() (MemoryStats, error) {
	d := c.dir()
	var m MemoryStats
	var err error
	if m.Usage, err = readUint(d, "memory.current"); err != nil {
		return m, err
	}
	kv, err := readKV(d, "memory.stat")
	if err != nil {
		return m, err
	}
	m.WorkingSet = workingSet(m.Usage, kv["inactive_file"])
	m.RSS, m.Cache = kv["anon"], kv["file"]
	m.PageFaults, m.MajorFaults = kv["pgfault"], kv["pgmajfault"]
	if k, ok := kv["kernel"]; ok {
		m.Kernel = k
	} else {
		m.Kernel = kv["kernel_stack"] + kv["slab"] + kv["sock"] + kv["pagetables"] + kv["percpu"]
	}
	m.Limit, _ = readUint(d, "memory.max")
	m.MappedFile = kv["file_mapped"]
	m.ActiveFile, m.InactiveFile, m.Shmem = kv["active_file"], kv["inactive_file"], kv["shmem"]
	return m, nil
}

func (c *v2) OOMKills() (uint64, error) {
	kv, err := readKV(c.dir(), "memory.events")
	if err != nil {
		return 0, err
	}
	return kv["oom_kill"], nil
}

func (c *v2) OOMKillsFile() string { return filepath.Join(c.dir(), "memory.events") }

// WatchOOM watches memory.events with inotify: the kernel marks it
// modified when a counter in it moves.
func (c *v2) WatchOOM(ctx context.Context) (<-chan OOMEvent, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "oom-inotify")
	if _, err := unix.InotifyAddWatch(fd, filepath.Join(c.dir(), "memory.events"), unix.IN_MODIFY); err != nil {
		f.Close()
		return nil, fmt.Errorf("watch %s/memory.events: %w", c.dir(), err)
	}
	return watchOOM(ctx, f, 4096, c.memory, c.OOMKills), nil
}

func (c *v2) Pids() ([]int, error) { return readPids(c.dir()) }

func (c *v2) CloneInto() (*os.File, error) {
	return os.OpenFile(c.dir(), os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// KillAll writes cgroup.kill (Linux 5.14), which the kernel carries out
// for every process at once, forks in flight included; without it each
// listed process is killed, until the list is empty.
func (c *v2) KillAll(ctx context.Context) error {
	d := c.dir()
	killFile := filepath.Join(d, "cgroup.kill")
	for {
		pids, err := readPids(d)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if _, err := os.Stat(killFile); err == nil {
			writeFile(d, "cgroup.kill", "1")
		} else {
			for _, p := range pids {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill processes of cgroup %s: %w (%d left)", c.path, ctx.Err(), len(pids))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Destroy kills the cgroup's processes (KillAll), its children's first,
// then removes the directories.
func (c *v2) Destroy(ctx context.Context) error {
	d := c.dir()
	if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, child := range children(d) {
		sub := &v2{root: c.root, path: filepath.Join(c.path, child)}
		if err := sub.Destroy(ctx); err != nil {
			return err
		}
	}
	if err := c.KillAll(ctx); err != nil {
		return err
	}
	return removeDir(ctx, d)
}
