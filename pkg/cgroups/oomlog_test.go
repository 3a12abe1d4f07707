package cgroups

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestParseOOMKillRecord(t *testing.T) {
	tests := []struct {
		record string
		want   *OOMVictim
	}{
		{"6,1532,123456789,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/crid/p1/crid-c1,task_memcg=/crid/p1/crid-c1,task=sh,pid=12,uid=0\n",
			&OOMVictim{Pid: 12, Comm: "sh", LimitCgroup: "/crid/p1/crid-c1", TaskCgroup: "/crid/p1/crid-c1"}},
		// The pod's limit, hit by a container's process.
		{"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod1,task_memcg=/kubepods/burstable/pod1/c1,task=python3,pid=4242,uid=1000",
			&OOMVictim{Pid: 4242, Comm: "python3", LimitCgroup: "/kubepods/burstable/pod1", TaskCgroup: "/kubepods/burstable/pod1/c1"}},
		// A tenant's command name that reads like the fields after it.
		{"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/crid/p1,task_memcg=/crid/p1/c1,task=a,pid=1,task=,pid=99,uid=0",
			&OOMVictim{Pid: 99, Comm: "a,pid=1,task=", LimitCgroup: "/crid/p1", TaskCgroup: "/crid/p1/c1"}},
		{"6,1533,123456790,-;Memory cgroup out of memory: Killed process 12 (sh) total-vm:4kB", nil},
		{"6,1;oom-kill:constraint=CONSTRAINT_NONE", nil}, // no pid
		{"", nil},
	}
	for _, tt := range tests {
		got, ok := ParseOOMKillRecord(tt.record)
		if tt.want == nil {
			if ok {
				t.Errorf("%q parsed as %+v", tt.record, got)
			}
			continue
		}
		if !ok || *got != *tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.record, got, ok, tt.want)
		}
	}
}

func TestUnder(t *testing.T) {
	for _, tt := range []struct {
		p, cg string
		want  bool
	}{
		{"/a/b", "/a/b", true}, {"/a/b/c", "/a/b", true}, {"/a/bc", "/a/b", false}, {"/a", "/a/b", false}, {"/x", "/", true},
	} {
		if got := under(tt.p, tt.cg); got != tt.want {
			t.Errorf("under(%q, %q) = %v", tt.p, tt.cg, got)
		}
	}
}

// TestOOMDumpReadsTheKernelsFigures: the kernel's account of a kill, a
// v1 one as this host's kernel wrote it (a pod's limit hit by a
// container's tail) and a v2 one in its format (memory.stat one line a
// record since 6.5, one record before), gives the figures of the
// cgroup whose limit ran out, as printed before the kill; a burst of two
// kills gives the first's, and a dump printed stale the task list's anon.
func TestOOMDumpReadsTheKernelsFigures(t *testing.T) {
	const pod = "/crid-e2e/kubepods/burstable/podb8fb161f25b91ab0928762cec929b101"
	tests := []struct {
		file, cgroup string
		pid          int
		want         MemoryStats
		pages4K      bool // want counts the task list's pages of 4 KiB
	}{
		{"oom-kill-v1.kmsg", "/crid/e9e245146d8bdb66764c2432cb18abebf1cd8ed3bb8ea1f7de34400dc6658393", 16700,
			MemoryStats{Usage: 49152 << 10, Limit: 49152 << 10, RSS: 49868800, Kernel: 452 << 10, WorkingSet: 49152 << 10}, false},
		{"oom-kill-v2.kmsg", "/kubepods/burstable/pod1/c1", 4242,
			MemoryStats{Usage: 131072 << 10, Limit: 131072 << 10, RSS: 96468992, Cache: 33554432, Kernel: 2097152,
				Shmem: 25165824, ActiveFile: 2097152, InactiveFile: 6291456, WorkingSet: 131072<<10 - 6291456}, false},
		{"oom-kill-v2-before-6.5.kmsg", "/kubepods/burstable/pod1/c1", 4242,
			MemoryStats{Usage: 131072 << 10, Limit: 131072 << 10, RSS: 96468992, Cache: 33554432, Kernel: 2097152,
				Shmem: 25165824, ActiveFile: 2097152, InactiveFile: 6291456, WorkingSet: 131072<<10 - 6291456}, false},
		// Two kills 10 ms apart under a kubelet: tail with 32Mi, then sh
		// while tail still gave its pages back. The second dump holds
		// 0.6Mi of its 32Mi; the first says what filled it.
		{"oom-kill-v1-burst.kmsg", pod + "/crid-6da593254eeb2bbb56e2b3e3de0d5e098078ac678609f3eb451ed6800f813e9a", 29816,
			MemoryStats{Usage: 32768 << 10, Limit: 32768 << 10, RSS: 33128448, Cache: 4096, Kernel: 412 << 10,
				InactiveFile: 4096, WorkingSet: 32768<<10 - 4096}, false},
		// The first of them as a kernel printed it stale (its
		// memory.stat zero): the task list's 8032 anon pages.
		{"oom-kill-v1-stale.kmsg", pod + "/crid-6da593254eeb2bbb56e2b3e3de0d5e098078ac678609f3eb451ed6800f813e9a", 29816,
			MemoryStats{Usage: 32768 << 10, Limit: 32768 << 10, RSS: 8032 * 4096, Kernel: 412 << 10, WorkingSet: 32768 << 10}, true},
	}
	for _, tt := range tests {
		if tt.pages4K && os.Getpagesize() != 4096 {
			t.Logf("%s: left out, its task list's pages are 4 KiB ones", tt.file)
			continue
		}
		data, err := os.ReadFile("testdata/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		var d OOMDump
		for _, rec := range strings.SplitAfter(string(data), "\n") {
			d.Add(rec)
		}
		v := d.Last(tt.cgroup)
		if v == nil || v.Pid != tt.pid {
			t.Fatalf("%s: victim %+v, want pid %d", tt.file, v, tt.pid)
		}
		if v.Memory == nil || *v.Memory != tt.want {
			t.Errorf("%s: memory %+v\nwant %+v", tt.file, v.Memory, tt.want)
		}
		if d.Last("/elsewhere") != nil {
			t.Errorf("%s: a kill in another cgroup was taken", tt.file)
		}
	}

	// Without the dump (the kernel's rate limit), the victim alone; a
	// dump cut short by a new kill is not given to it, nor one without
	// its memory.stat.
	var d OOMDump
	addKill(&d, 1, "/a", 6, "memory: usage 10kB, limit 10kB, failcnt 0")
	if v := d.Last("/a"); v == nil || v.Pid != 6 || v.Memory != nil {
		t.Errorf("victim %+v, want pid 6 without figures", v)
	}
	addKill(&d, 1, "/a", 7, "memory: usage 10kB, limit 10kB, failcnt 0", "anon 10240",
		"sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
	if v := d.Last("/a"); v == nil || v.Pid != 7 || v.Memory != nil {
		t.Errorf("victim %+v, want pid 7 without figures", v)
	}

	// A kill with figures is not taken for a later one without, once
	// they are more than a burst apart: it was another running out.
	var apart OOMDump
	addKill(&apart, 1000000, "/b", 9, "memory: usage 10kB, limit 10kB, failcnt 0", "anon 10240")
	addKill(&apart, 6000000, "/b", 10)
	if v := apart.Last("/b"); v == nil || v.Pid != 10 || v.Memory != nil {
		t.Errorf("victim %+v, want pid 10 without figures", v)
	}

	// A task list larger than a breakdown that holds (pages shared by
	// forks, or faulted before a process joined) leaves it as it is.
	var forks OOMDump
	addKill(&forks, 1, "/f", 11, "memory: usage 40kB, limit 40kB, failcnt 0", "anon 36864",
		"[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
		"[     11]     0    11       10       10       10        0         0     4096        0             0 sh",
		"[     12]     0    12       10       10       10        0         0     4096        0             0 sh")
	if v := forks.Last("/f"); v == nil || v.Memory == nil || v.Memory.RSS != 36864 {
		t.Errorf("victim %+v, want anon 36864 of the breakdown", v)
	}

	// Counters printed unflushed, as a CI run's kernel did: the pod at its
	// limit with nothing in its totals is no breakdown; one that holds the
	// usage (here half in the kernel's own) is.
	for _, tt := range []struct {
		kmem, rss uint64
		want      bool
	}{{412, 0, false}, {412, 16 << 20, true}, {16 << 10, 0, true}} {
		var d OOMDump
		addKill(&d, 1, "/p/c", 8, "memory: usage 32768kB, limit 32768kB, failcnt 142",
			fmt.Sprintf("kmem: usage %dkB, limit 9007199254740988kB, failcnt 0", tt.kmem),
			"Memory cgroup stats for /p:", "total_cache 0", fmt.Sprintf("total_rss %d", tt.rss))
		if v := d.Last("/p/c"); v == nil || v.Pid != 8 || (v.Memory != nil) != tt.want {
			t.Errorf("kmem %dkB, total_rss %d: victim %+v, want figures %v", tt.kmem, tt.rss, v, tt.want)
		}
	}
}

// addKill gives d a kill of pid in cgroup at us microseconds, the
// dump's lines first.
func addKill(d *OOMDump, us int, cgroup string, pid int, dump ...string) {
	for _, line := range dump {
		d.Add(fmt.Sprintf("6,0,%d,-;%s", us, line))
	}
	d.Add(fmt.Sprintf("6,0,%d,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=sh,pid=%d,uid=0",
		us, cgroup, cgroup, pid))
}

// FuzzOOMDump: the kernel's log holds what tenants name their processes;
// no record makes the reader panic, and a victim it gives has a pid.
func FuzzOOMDump(f *testing.F) {
	for _, name := range []string{"oom-kill-v1.kmsg", "oom-kill-v1-burst.kmsg", "oom-kill-v1-stale.kmsg", "oom-kill-v2.kmsg", "oom-kill-v2-before-6.5.kmsg"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, log string) {
		var d OOMDump
		for _, rec := range strings.SplitAfter(log, "\n") {
			d.Add(rec)
		}
		if v := d.Last("/"); v != nil && v.Pid <= 0 {
			t.Fatalf("victim without a pid: %+v", v)
		}
	})
}
