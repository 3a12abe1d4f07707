package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// v1 manages a cgroup on the v1 hierarchies (v1 and hybrid hosts). In
// hybrid mode the empty unified tree carries no controllers and is left
// alone, as runc and containerd leave it.
type v1 struct {
	mounts          map[string]string
	path            string
	mode            Mode
	tolerateHugetlb bool
}

func (c *v1) Path() string { return c.path }
func (c *v1) Mode() Mode   { return c.mode }

func (c *v1) dir(controller string) string {
	m, ok := c.mounts[controller]
	if !ok {
		return ""
	}
	return filepath.Join(m, c.path)
}

func (c *v1) Create(r *Resources) error {
	for _, ctl := range v1Controllers {
		d := c.dir(ctl)
		if d == "" {
			continue
		}
		if ctl == "cpuset" {
			if err := c.makeCpuset(); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	return c.Update(r)
}

// makeCpuset makes each missing level of the cpuset path with its parent's
// cpus and mems: a v1 cpuset is born empty, and a process cannot join an
// empty one.
func (c *v1) makeCpuset() error {
	root := c.mounts["cpuset"]
	cur := root
	for _, part := range strings.Split(strings.TrimPrefix(c.path, "/"), "/") {
		parent := cur
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", cur, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := readFile(cur, f)
			if err != nil {
				return err
			}
			if v != "" {
				continue
			}
			pv, err := readFile(parent, f)
			if err != nil {
				return err
			}
			if err := writeFile(cur, f, pv); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *v1) Update(r *Resources) error {
	if r == nil {
		return nil
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if len(r.Unified) > 0 {
		return fmt.Errorf("unified resources %v need cgroup v2; this host runs cgroup %s: %w", keys(r.Unified), c.mode, errdefs.ErrFailedPrecondition)
	}
	if d := c.dir("cpu"); d != "" {
		if r.CPUShares != 0 {
			if err := writeFile(d, "cpu.shares", strconv.FormatUint(r.CPUShares, 10)); err != nil {
				return err
			}
		}
		if r.CPUPeriod != 0 {
			if err := writeFile(d, "cpu.cfs_period_us", strconv.FormatUint(r.CPUPeriod, 10)); err != nil {
				return err
			}
		}
		if r.CPUQuota != 0 {
			if err := writeFile(d, "cpu.cfs_quota_us", strconv.FormatInt(r.CPUQuota, 10)); err != nil {
				return err
			}
		}
	}
	if d := c.dir("cpuset"); d != "" {
		if r.CPUSetCPUs != "" {
			if err := writeFile(d, "cpuset.cpus", r.CPUSetCPUs); err != nil {
				return err
			}
		}
		if r.CPUSetMems != "" {
			if err := writeFile(d, "cpuset.mems", r.CPUSetMems); err != nil {
				return err
			}
		}
	}
	if err := c.updateMemory(r); err != nil {
		return err
	}
	if d := c.dir("pids"); d != "" && r.PidsLimit != 0 {
		if err := writeFile(d, "pids.max", limitString(r.PidsLimit)); err != nil {
			return err
		}
	}
	for _, h := range r.HugepageLimits {
		d := c.dir("hugetlb")
		if write, err := hugepageLimit(h, d != "", c.tolerateHugetlb); err != nil || !write {
			if err != nil {
				return err
			}
			continue
		}
		if err := writeFile(d, "hugetlb."+h.PageSize+".limit_in_bytes", strconv.FormatUint(h.Limit, 10)); err != nil {
			return err
		}
	}
	return c.updateDevices(r.Devices)
}

// updateDevices writes the device rules in order, each to devices.allow
// or devices.deny.
func (c *v1) updateDevices(rules []DeviceRule) error {
	if rules == nil {
		return nil
	}
	d := c.dir("devices")
	if d == "" {
		return errors.New("device rules: the devices controller is not mounted on this host")
	}
	for _, r := range rules {
		file := "devices.deny"
		if r.Allow {
			file = "devices.allow"
		}
		if err := writeFile(d, file, r.String()); err != nil {
			return fmt.Errorf("device rule %q: %w", r.String(), err)
		}
	}
	return nil
}

// updateMemory writes the memory and memory+swap limits in the order the
// kernel accepts: memsw may never be below the memory limit, so when limits
// grow memsw goes first, and when they shrink, last.
func (c *v1) updateMemory(r *Resources) error {
	d := c.dir("memory")
	if d == "" || (r.MemoryLimit == 0 && r.MemorySwapLimit == 0) {
		return nil
	}
	mem := strconv.FormatInt(r.MemoryLimit, 10)
	memsw := ""
	switch {
	case r.MemorySwapLimit != 0:
		memsw = strconv.FormatInt(r.MemorySwapLimit, 10)
	case r.MemoryLimit > 0:
		// No swap asked for: none given, as the kubelet means with swap off.
		memsw = mem
	case r.MemoryLimit == -1:
		memsw = "-1"
	}
	if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err != nil {
		memsw = "" // swap accounting is off on this kernel
	}
	writeMem := func() error {
		if r.MemoryLimit == 0 {
			return nil
		}
		return writeFile(d, "memory.limit_in_bytes", mem)
	}
	if memsw == "" {
		return writeMem()
	}
	cur, err := readUint(d, "memory.memsw.limit_in_bytes")
	if err != nil {
		return err
	}
	want := uint64(r.MemorySwapLimit)
	if memsw == mem {
		want = uint64(r.MemoryLimit)
	}
	if memsw == "-1" || want > cur {
		if err := writeFile(d, "memory.memsw.limit_in_bytes", memsw); err != nil {
			return err
		}
		return writeMem()
	}
	if err := writeMem(); err != nil {
		return err
	}
	return writeFile(d, "memory.memsw.limit_in_bytes", memsw)
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (c *v1) Add(pid int) error {
	for _, ctl := range v1Controllers {
		if d := c.dir(ctl); d != "" {
			if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *v1) JoinFiles() []string {
	var files []string
	for _, ctl := range v1Controllers {
		// Co-mounted controllers (cpu,cpuacct) share one file.
		if d := c.dir(ctl); d != "" && !slices.Contains(files, filepath.Join(d, "tasks")) {
			files = append(files, filepath.Join(d, "tasks"))
		}
	}
	return files
}

func (c *v1) CPUStats() (CPUStats, error) {
	var s CPUStats
	if d := c.dir("cpuacct"); d != "" {
		var err error
		if s.UsageNanos, err = readUint(d, "cpuacct.usage"); err != nil {
			return s, err
		}
	}
	if d := c.dir("cpu"); d != "" {
		if kv, err := readKV(d, "cpu.stat"); err == nil {
			s.Periods, s.Throttled, s.ThrottledNanos = kv["nr_periods"], kv["nr_throttled"], kv["throttled_time"]
		}
	}
	return s, nil
}

func (c *v1) Stats() (*Stats, error) {
	cpu, err := c.CPUStats()
	if err != nil {
		return nil, err
	}
	s := &Stats{Time: time.Now(), CPU: cpu}
	// cpuacct.stat counts USER_HZ ticks, 100 a second on Linux.
	if d := c.dir("cpuacct"); d != "" {
		if kv, err := readKV(d, "cpuacct.stat"); err == nil {
			s.CPU.UserNanos = kv["user"] * 10_000_000
			s.CPU.SystemNanos = kv["system"] * 10_000_000
		}
	}
	if d := c.dir("memory"); d != "" {
		m, err := c.memory(d)
		if err != nil {
			return nil, err
		}
		s.Memory = m
	}
	if d := c.dir("pids"); d != "" {
		s.Pids.Current, _ = readUint(d, "pids.current")
		s.Pids.Limit, _ = readUint(d, "pids.max")
	}
	return s, nil
}

func (c *v1) DetailedStats() (*Stats, error) {
	s, err := c.Stats()
	if err != nil {
		return nil, err
	}
	if d := c.dir("cpu"); d != "" {
		s.Limits.CPUShares, _ = readUint(d, "cpu.shares")
		s.Limits.CPUPeriod, _ = readUint(d, "cpu.cfs_period_us")
	}
	if d := c.dir("memory"); d != "" {
		m := &s.Memory
		m.MaxUsage, _ = readUint(d, "memory.max_usage_in_bytes")
		m.Failcnt, _ = readUint(d, "memory.failcnt")
		// memsw counts memory and swap together, where swap is accounted.
		if memsw, err := readUint(d, "memory.memsw.usage_in_bytes"); err == nil && memsw > m.Usage {
			m.Swap = memsw - m.Usage
		}
		if lim, err := readUint(d, "memory.memsw.limit_in_bytes"); err == nil {
			if lim >= 1<<62 {
				lim = ^uint64(0)
			}
			s.Limits.SwapLimit = lim
		}
	}
	return s, nil
}

func (c *v1) memory(d string) (MemoryStats, error) {
	var m MemoryStats
	var err error
	if m.Usage, err = readUint(d, "memory.usage_in_bytes"); err != nil {
		return m, err
	}
	kv, err := readKV(d, "memory.stat")
	if err != nil {
		return m, err
	}
	m.WorkingSet = workingSet(m.Usage, kv["total_inactive_file"])
	m.RSS, m.Cache = kv["total_rss"], kv["total_cache"]
	m.PageFaults, m.MajorFaults = kv["total_pgfault"], kv["total_pgmajfault"]
	m.Kernel, _ = readUint(d, "memory.kmem.usage_in_bytes")
	m.MappedFile = kv["total_mapped_file"]
	m.ActiveFile, m.InactiveFile, m.Shmem = kv["total_active_file"], kv["total_inactive_file"], kv["total_shmem"]
	if lim, err := readUint(d, "memory.limit_in_bytes"); err == nil {
		// v1 says "no limit" with the largest page-aligned int64.
		if lim >= 1<<62 {
			lim = ^uint64(0)
		}
		m.Limit = lim
	}
	return m, nil
}

func (c *v1) OOMKills() (uint64, error) {
	kv, err := readKV(c.dir("memory"), "memory.oom_control")
	if err != nil {
		return 0, err
	}
	return kv["oom_kill"], nil
}

func (c *v1) OOMKillsFile() string {
	if d := c.dir("memory"); d != "" {
		return filepath.Join(d, "memory.oom_control")
	}
	return ""
}

// WatchOOM registers an eventfd on memory.oom_control (v1's notification
// API, cgroup.event_control): the kernel signals it when the cgroup goes
// out of memory, and when the cgroup is removed.
func (c *v1) WatchOOM(ctx context.Context) (<-chan OOMEvent, error) {
	d := c.dir("memory")
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := os.NewFile(uintptr(efd), "oom-eventfd")
	ctl, err := os.Open(filepath.Join(d, "memory.oom_control"))
	if err != nil {
		ev.Close()
		return nil, err
	}
	if err := writeFile(d, "cgroup.event_control", fmt.Sprintf("%d %d", efd, ctl.Fd())); err != nil {
		ev.Close()
		ctl.Close()
		return nil, err
	}
	return watchOOM(ctx, ev, 8, func() (MemoryStats, error) { return c.memory(d) }, c.OOMKills, ctl), nil
}

func (c *v1) CloneInto() (*os.File, error) { return nil, ErrNoCloneInto }

func (c *v1) Pids() ([]int, error) {
	return readPids(c.dir("memory"))
}

func (c *v1) Destroy(ctx context.Context) error {
	// Children first: a pod's leftover containers after a crash.
	for _, child := range children(c.dir("memory")) {
		sub := &v1{mounts: c.mounts, path: filepath.Join(c.path, child), mode: c.mode}
		if err := sub.Destroy(ctx); err != nil {
			return err
		}
	}
	if err := c.KillAll(ctx); err != nil {
		return err
	}
	var errs []error
	for _, ctl := range v1Controllers {
		if d := c.dir(ctl); d != "" {
			errs = append(errs, removeDir(ctx, d))
		}
	}
	return errors.Join(errs...)
}

// KillAll SIGKILLs what is in the cgroup until nothing is: a process may
// fork while the list is read, so the list is read again until empty. The
// freezer stops it forking in between, when it is mounted.
func (c *v1) KillAll(ctx context.Context) error {
	freezer := c.dir("freezer")
	if freezer != "" {
		if _, err := os.Stat(freezer); err != nil {
			freezer = ""
		}
	}
	if freezer != "" {
		writeFile(freezer, "freezer.state", "FROZEN")
		defer writeFile(freezer, "freezer.state", "THAWED")
	}
	for {
		var all []int
		for _, ctl := range v1Controllers {
			if d := c.dir(ctl); d != "" {
				pids, err := readPids(d)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				all = append(all, pids...)
			}
		}
		if len(all) == 0 {
			return nil
		}
		for _, p := range all {
			syscall.Kill(p, syscall.SIGKILL)
		}
		if freezer != "" {
			// A frozen task does not die until thawed.
			writeFile(freezer, "freezer.state", "THAWED")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill processes of cgroup %s: %w (%d left)", c.path, ctx.Err(), len(all))
		case <-time.After(10 * time.Millisecond):
		}
		if freezer != "" {
			writeFile(freezer, "freezer.state", "FROZEN")
		}
	}
}
