package container

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/oci/monitor"
)

func TestOOMMessage(t *testing.T) {
	const mi = 1 << 20
	victim := &cgroups.OOMVictim{Pid: 12, Comm: "sh", LimitCgroup: "/crid/p/c", TaskCgroup: "/crid/p/c"}
	tests := []struct {
		name     string
		r        monitor.OOMReport
		ownLimit int64
		want     string
	}{
		{"the container's limit", monitor.OOMReport{AtKill: true, Limit: 64 * mi, Anon: 618 * mi / 10, File: 19 * mi / 10, ActiveFile: 12 * mi / 10, Kernel: 3 * mi / 10, Victim: victim},
			64 * mi, "OOMKilled: limit 64Mi; anon 61.8Mi, page cache 1.9Mi (active 1.2Mi), kernel 307.2Ki; process sh (pid 12) killed"},
		{"page cache filled it", monitor.OOMReport{AtKill: true, Limit: 64 * mi, Anon: 30 * mi, File: 33 * mi, ActiveFile: 32 * mi, Kernel: 1 * mi},
			64 * mi, "OOMKilled: limit 64Mi; anon 30Mi, page cache 33Mi (active 32Mi), kernel 1Mi"},
		{"tmpfs filled it", monitor.OOMReport{AtKill: true, Limit: 64 * mi, Anon: 39 * mi, File: 24 * mi, Shmem: 24 * mi, Kernel: 1 * mi},
			64 * mi, "OOMKilled: limit 64Mi; anon 39Mi, page cache 24Mi (active 0, tmpfs 24Mi), kernel 1Mi"},
		{"the pod's limit", monitor.OOMReport{Limit: math.MaxUint64, Anon: 100 * mi, File: 512 << 10, Kernel: 1 << 20,
			Victim: &cgroups.OOMVictim{Pid: 7, Comm: "java", LimitCgroup: "/kubepods/pod1", TaskCgroup: "/crid/p/c"}},
			0, "OOMKilled: the memory limit of /kubepods/pod1 (the pod's, not the container's) ran out; the container held anon 100Mi, page cache 512Ki (active 0), kernel 1Mi (read at the exit, after the kill freed the victim's memory); process java (pid 7) killed"},
		{"the pod's limit, the kernel's figures", monitor.OOMReport{AtKill: true, Cgroup: "/kubepods/pod1", Limit: 128 * mi, Anon: 92 * mi, File: 32 * mi, ActiveFile: 2 * mi, Shmem: 24 * mi, Kernel: 2 * mi,
			Victim: &cgroups.OOMVictim{Pid: 7, Comm: "java", LimitCgroup: "/kubepods/pod1", TaskCgroup: "/crid/p/c"}},
			0, "OOMKilled: the memory limit of /kubepods/pod1 (128Mi, the pod's, not the container's) ran out; the pod held anon 92Mi, page cache 32Mi (active 2Mi, tmpfs 24Mi), kernel 2Mi; process java (pid 7) killed"},
		// The kubelet's pod limit is the sum of its containers': a pod of
		// one container reaches it first, by the infra process's pages.
		{"the pod's limit, the container's the same", monitor.OOMReport{AtKill: true, Cgroup: "/kubepods/pod1", Limit: 32 * mi, Anon: 316 * mi / 10, Kernel: 408 << 10,
			Victim: &cgroups.OOMVictim{Pid: 829, Comm: "tail", LimitCgroup: "/kubepods/pod1", TaskCgroup: "/crid/p/c"}},
			32 * mi, "OOMKilled: limit 32Mi, reached at the pod's limit (32Mi, /kubepods/pod1); the pod held anon 31.6Mi, page cache 0 (active 0), kernel 408Ki; process tail (pid 829) killed"},
		// The pod's limit, with the figures of the container's own
		// cgroup (read at its out-of-memory notification).
		{"the pod's limit, the container's figures", monitor.OOMReport{AtKill: true, Cgroup: "/crid/p/c", Limit: 32 * mi, Anon: 315 * mi / 10, Kernel: 300 << 10,
			Victim: &cgroups.OOMVictim{Pid: 829, Comm: "tail", LimitCgroup: "/kubepods/pod1", TaskCgroup: "/crid/p/c"}},
			32 * mi, "OOMKilled: limit 32Mi, reached at the pod's limit (/kubepods/pod1); the container held anon 31.5Mi, page cache 0 (active 0), kernel 300Ki; process tail (pid 829) killed"},
	}
	for _, tt := range tests {
		if got := OOMMessage(&tt.r, "/crid/p/c", tt.ownLimit); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestQuantity(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 1023: "1023", 1024: "1Ki", 1536: "1.5Ki", 64 << 20: "64Mi", 3 << 30: "3Gi"} {
		if got := Quantity(n); got != want {
			t.Errorf("Quantity(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestOOMKillIsExplainedInTheStatus(t *testing.T) {
	f := newFixture(t)
	c := f.create(t, "hog")
	if _, err := f.Start(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	f.n.mu.Lock()
	f.n.dead[c.ID] = true
	f.n.mu.Unlock()
	report := &monitor.OOMReport{AtKill: true, Limit: 64 << 20, Anon: 40 << 20, File: 23 << 20, ActiveFile: 20 << 20, Kernel: 1 << 20,
		Victim: &cgroups.OOMVictim{Pid: 99, Comm: "tail", LimitCgroup: c.Cgroup, TaskCgroup: c.Cgroup}}
	if err := monitor.WriteExit(c.Bundle, monitor.Exit{ExitCode: 137, Signal: 9, OOMKilled: true, OOM: report, FinishedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := f.Get(c.ID)
		if got.State == Exited {
			if got.Reason != "OOMKilled" || !strings.HasPrefix(got.Message, "OOMKilled: limit 64Mi; anon 40Mi, page cache 23Mi (active 20Mi)") ||
				!strings.Contains(got.Message, "process tail (pid 99) killed") || got.OOM == nil || got.OOM.File != 23<<20 {
				t.Fatalf("status: %s %q %+v", got.Reason, got.Message, got.OOM)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the exit was never recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The record keeps it across a restart.
	f.restart(t)
	if got, _ := f.Get(c.ID); got.OOM == nil || !strings.Contains(got.Message, "page cache 23Mi") {
		t.Errorf("after a restart: %q %+v", got.Message, got.OOM)
	}
}
