package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeDir makes a directory of cgroup files with the given contents.
func fakeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestV2UpdateWritesConvertedValues(t *testing.T) {
	root := fakeDir(t, nil)
	d := filepath.Join(root, "pod")
	os.Mkdir(d, 0o755)
	for _, f := range []string{"cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "memory.max", "memory.swap.max", "pids.max", "hugetlb.2MB.max", "io.weight"} {
		os.WriteFile(filepath.Join(d, f), nil, 0o644)
	}
	c := &v2{root: root, path: "/pod"}
	r := &Resources{CPUShares: 1024, CPUQuota: 50000, CPUPeriod: 100000, CPUSetCPUs: "0-1", CPUSetMems: "0",
		MemoryLimit: 64 << 20, MemorySwapLimit: 96 << 20, PidsLimit: 42,
		HugepageLimits: []HugepageLimit{{"2MB", 4 << 20}}, Unified: map[string]string{"io.weight": "default 200"}}
	if err := c.Update(r); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu.weight": "39", "cpu.max": "50000 100000", "cpuset.cpus": "0-1", "cpuset.mems": "0",
		"memory.max": "67108864", "memory.swap.max": "33554432", "pids.max": "42",
		"hugetlb.2MB.max": "4194304", "io.weight": "default 200",
	}
	for f, v := range want {
		if got := read(t, d, f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if err := c.Update(&Resources{Unified: map[string]string{"io.max": "8:0 rbps=1"}}); err == nil || !strings.Contains(err.Error(), "io.max") {
		t.Errorf("a unified key without its file: %v", err)
	}
	// Unlimited values.
	if err := c.Update(&Resources{MemoryLimit: -1, PidsLimit: -1, CPUQuota: -1}); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"memory.max": "max", "pids.max": "max", "cpu.max": "max 100000"} {
		if got := read(t, d, f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
}

func TestV1UpdateRefusesUnifiedAndWritesLimits(t *testing.T) {
	mounts := map[string]string{}
	for _, ctl := range []string{"cpu", "memory", "pids"} {
		root := fakeDir(t, nil)
		mounts[ctl] = root
		d := filepath.Join(root, "pod")
		os.Mkdir(d, 0o755)
		files := map[string][]string{
			"cpu":    {"cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"},
			"memory": {"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"},
			"pids":   {"pids.max"},
		}[ctl]
		for _, f := range files {
			os.WriteFile(filepath.Join(d, f), []byte("9223372036854771712"), 0o644)
		}
	}
	c := &v1{mounts: mounts, path: "/pod", mode: Hybrid}
	if err := c.Update(&Resources{Unified: map[string]string{"memory.high": "1"}}); err == nil || !strings.Contains(err.Error(), "need cgroup v2") {
		t.Fatalf("unified on v1: %v", err)
	}
	if err := c.Update(&Resources{CPUShares: 512, CPUQuota: 20000, CPUPeriod: 50000, MemoryLimit: 1 << 20, PidsLimit: -1}); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"cpu":    {"cpu.shares": "512", "cpu.cfs_period_us": "50000", "cpu.cfs_quota_us": "20000"},
		"memory": {"memory.limit_in_bytes": "1048576", "memory.memsw.limit_in_bytes": "1048576"},
		"pids":   {"pids.max": "max"},
	}
	for ctl, files := range want {
		for f, v := range files {
			if got := read(t, filepath.Join(mounts[ctl], "pod"), f); got != v {
				t.Errorf("%s/%s = %q, want %q", ctl, f, got, v)
			}
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/kubepods/burstable/pod1": "/kubepods/burstable/pod1",
		"kubepods/pod1/":           "/kubepods/pod1",
		"/k8s.io/abc":              "/k8s.io/abc",
	} {
		if got, err := CleanPath(in); err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v", in, got, err)
		}
	}
	for in, why := range map[string]string{
		"":                                 "empty",
		"/":                                "empty",
		"/a/../../etc":                     "climbs",
		"kubepods-burstable.slice":         "systemd",
		"kubepods.slice:crio:abc":          "systemd",
		"/kubepods-besteffort-pod1.slice/": "cgroupfs",
	} {
		if _, err := CleanPath(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("CleanPath(%q): %v, want an error mentioning %q", in, err, why)
		}
	}
	if _, err := Join("/kubepods", "../x"); err == nil {
		t.Error("Join accepted a child with a slash")
	}
}

func TestParseMountinfo(t *testing.T) {
	const mi = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	p := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(p, []byte(mi), 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	h, err := parseMountinfo(f, Hybrid)
	if err != nil {
		t.Fatal(err)
	}
	if h.V1["cpu"] != "/sys/fs/cgroup/cpu,cpuacct" || h.V1["cpuacct"] != "/sys/fs/cgroup/cpu,cpuacct" || h.V1["memory"] != "/sys/fs/cgroup/memory" {
		t.Errorf("v1 mounts %v", h.V1)
	}
	if _, ok := h.V1["pids"]; ok {
		t.Error("an unmounted controller was found")
	}
	if !strings.Contains(h.String(), "hybrid") {
		t.Errorf("String() = %q", h.String())
	}
}

// TestDetailedStats: the figures CRI metrics report beside the CRI's own
// (peak, limit hits, mapped file pages, swap, the limits set), from each
// version's files; plain Stats leaves the extra reads out.
func TestDetailedStats(t *testing.T) {
	v2root := fakeDir(t, nil)
	v2dir := filepath.Join(v2root, "c")
	os.Mkdir(v2dir, 0o755)
	for name, v := range map[string]string{
		"cpu.stat": "usage_usec 10\n", "cpu.weight": "39", "cpu.max": "max 100000",
		"memory.current": "1000", "memory.max": "max", "memory.peak": "5000", "memory.swap.current": "300", "memory.swap.max": "max",
		"memory.stat":   "anon 600\nfile 400\nfile_mapped 120\ninactive_file 100\nkernel 50\n",
		"memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n",
	} {
		os.WriteFile(filepath.Join(v2dir, name), []byte(v), 0o644)
	}
	v1mounts := map[string]string{}
	for ctl, files := range map[string]map[string]string{
		"memory": {"memory.usage_in_bytes": "1000", "memory.limit_in_bytes": "9223372036854771712", "memory.max_usage_in_bytes": "5000",
			"memory.failcnt": "7", "memory.memsw.usage_in_bytes": "1300", "memory.memsw.limit_in_bytes": "9223372036854771712",
			"memory.stat": "total_rss 600\ntotal_cache 400\ntotal_mapped_file 120\ntotal_inactive_file 100\n"},
		"cpu": {"cpu.stat": "nr_periods 0\n", "cpu.shares": "1024", "cpu.cfs_period_us": "100000"},
	} {
		root := fakeDir(t, nil)
		os.Mkdir(filepath.Join(root, "c"), 0o755)
		for name, v := range files {
			os.WriteFile(filepath.Join(root, "c", name), []byte(v), 0o644)
		}
		v1mounts[ctl] = root
	}
	for name, m := range map[string]Manager{"v1": &v1{mounts: v1mounts, path: "/c"}, "v2": &v2{root: v2root, path: "/c"}} {
		plain, err := m.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if p := plain.Memory; p.MaxUsage != 0 || p.Failcnt != 0 || p.Swap != 0 || plain.Limits != (Limits{}) || p.MappedFile != 120 || p.WorkingSet != 900 {
			t.Errorf("%s Stats: %+v %+v", name, p, plain.Limits)
		}
		s, err := m.DetailedStats()
		if err != nil {
			t.Fatal(err)
		}
		if d := s.Memory; d.MaxUsage != 5000 || d.Failcnt != 7 || d.Swap != 300 || d.Limit != ^uint64(0) {
			t.Errorf("%s DetailedStats memory: %+v", name, d)
		}
		if l := s.Limits; l.CPUShares+27 < 1024 || l.CPUShares > 1024+27 || l.CPUPeriod != 100000 || l.SwapLimit != ^uint64(0) {
			t.Errorf("%s DetailedStats limits: %+v", name, l)
		}
	}
}

func TestJoinFiles(t *testing.T) {
	// cpu and cpuacct co-mounted share a tasks file; each other
	// controller has its own; v2 has one cgroup.procs.
	c := &v1{path: "/pod/ctr", mounts: map[string]string{
		"cpu": "/cg/cpu,cpuacct", "cpuacct": "/cg/cpu,cpuacct", "memory": "/cg/memory", "pids": "/cg/pids",
	}}
	want := []string{"/cg/cpu,cpuacct/pod/ctr/tasks", "/cg/memory/pod/ctr/tasks", "/cg/pids/pod/ctr/tasks"}
	if got := c.JoinFiles(); !slices.Equal(got, want) {
		t.Errorf("v1 JoinFiles = %q, want %q", got, want)
	}
	v := &v2{root: "/cg", path: "/pod/ctr"}
	if got := v.JoinFiles(); !slices.Equal(got, []string{"/cg/pod/ctr/cgroup.procs"}) {
		t.Errorf("v2 JoinFiles = %q", got)
	}
}

// TestCPUStats: the throttling watch's reads, from each version's files,
// with no memory controller to read; Stats reports the same figures.
func TestCPUStats(t *testing.T) {
	files := func(t *testing.T, kv map[string]string) string {
		root := fakeDir(t, nil)
		os.Mkdir(filepath.Join(root, "c"), 0o755)
		for name, v := range kv {
			os.WriteFile(filepath.Join(root, "c", name), []byte(v), 0o644)
		}
		return root
	}
	want := CPUStats{UsageNanos: 5_000_000, Periods: 40, Throttled: 10, ThrottledNanos: 2_000_000}
	tests := []struct {
		name string
		m    Manager
	}{
		{"v1", &v1{path: "/c", mounts: map[string]string{
			"cpuacct": files(t, map[string]string{"cpuacct.usage": "5000000", "cpuacct.stat": "user 1\nsystem 2\n"}),
			"cpu":     files(t, map[string]string{"cpu.stat": "nr_periods 40\nnr_throttled 10\nthrottled_time 2000000\n"}),
		}}},
		{"v2", &v2{path: "/c", root: files(t, map[string]string{
			"cpu.stat":       "usage_usec 5000\nuser_usec 0\nsystem_usec 0\nnr_periods 40\nnr_throttled 10\nthrottled_usec 2000\n",
			"memory.current": "0", "memory.max": "max", "memory.stat": "anon 0\n", // for Stats alone
		})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.CPUStats()
			if err != nil || got != want {
				t.Errorf("CPUStats = %+v, %v; want %+v", got, err, want)
			}
			st, err := tt.m.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.CPU.UsageNanos != want.UsageNanos || st.CPU.Periods != want.Periods || st.CPU.Throttled != want.Throttled || st.CPU.ThrottledNanos != want.ThrottledNanos {
				t.Errorf("Stats CPU = %+v, want the figures of %+v", st.CPU, want)
			}
		})
	}
}
