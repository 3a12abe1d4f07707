package cgroups

import (
	"context"
	"io"
	"time"
)

// Stats is what a cgroup has used.
type Stats struct {
	Time   time.Time
	CPU    CPUStats
	Memory MemoryStats
	Pids   PidsStats
	Limits Limits
}

// Limits are the cgroup's settings as the kernel holds them, for what the
// CRI's metrics call the container's spec (filled by DetailedStats).
type Limits struct {
	CPUShares uint64 // v2: cpu.weight mapped back onto shares
	CPUPeriod uint64 // microseconds
	SwapLimit uint64 // memory and swap (v1 memsw), swap alone (v2); MaxUint64 when unlimited
}

// CPUStats are cumulative since the cgroup was made.
type CPUStats struct {
	UsageNanos     uint64
	UserNanos      uint64
	SystemNanos    uint64
	Periods        uint64 // enforcement periods that elapsed
	Throttled      uint64 // periods in which the quota ran out
	ThrottledNanos uint64
}

// MemoryStats are in bytes, but for the fault counts.
type MemoryStats struct {
	Usage uint64
	// WorkingSet is usage less inactive file pages, as the kubelet computes
	// it for eviction.
	WorkingSet  uint64
	RSS         uint64 // anonymous memory
	Cache       uint64 // page cache
	Kernel      uint64 // slab, stacks, page tables, sockets
	PageFaults  uint64
	MajorFaults uint64
	Limit       uint64 // MaxUint64 when unlimited
	MappedFile  uint64 // page cache mapped into processes
	// ActiveFile and InactiveFile split Cache as the kernel's LRU does:
	// inactive file pages go first under pressure; active ones are what an
	// OOM-killed container's "page cache" mostly held.
	ActiveFile, InactiveFile uint64
	// Shmem is the part of Cache in tmpfs (emptyDir medium Memory,
	// /dev/shm): never reclaimed without swap.
	Shmem uint64
	// Filled by DetailedStats only:
	MaxUsage uint64 // the highest usage seen (v1 max_usage_in_bytes, v2 memory.peak)
	Failcnt  uint64 // times usage hit the limit (v2: memory.events max)
	Swap     uint64 // swap in use (0 without swap accounting)
}

// PidsStats count tasks.
type PidsStats struct {
	Current uint64
	Limit   uint64 // MaxUint64 when unlimited
}

// OOMEvent is one OOM kill in a cgroup, with the memory breakdown read as
// the kernel reported it: what filled the limit, which the kubelet's bare
// "OOMKilled" does not say.
type OOMEvent struct {
	Time  time.Time
	Kills uint64 // the cgroup's OOM kill count after this one
	// Memory at the time of the notification. The victim's pages are being
	// freed as it is read, so Anon may already be lower than at the kill.
	Memory MemoryStats
}

func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return 0
	}
	return usage - inactiveFile
}

// waitForKill polls an OOM kill counter for up to a second for it to pass
// seen: an out-of-memory notification comes before the kill it leads to,
// and not every one leads to a kill.
func waitForKill(ctx context.Context, count func() (uint64, error), seen uint64) (uint64, bool) {
	deadline := time.Now().Add(time.Second)
	for {
		n, err := count()
		if err != nil {
			return 0, false
		}
		if n > seen {
			return n, true
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// watchOOM turns the kernel's notifications on notify (an eventfd on v1, an
// inotify on v2) into OOMEvents until ctx ends. The reader goroutine owns
// the channel and closes it; a second one ends the reader when ctx does,
// by closing notify and the other files the registration holds open.
func watchOOM(ctx context.Context, notify io.ReadCloser, bufSize int, memory func() (MemoryStats, error),
	count func() (uint64, error), hold ...io.Closer) <-chan OOMEvent {
	seen, _ := count()
	out := make(chan OOMEvent, 16)
	go func() {
		<-ctx.Done()
		notify.Close()
		for _, c := range hold {
			c.Close()
		}
	}()
	go func() {
		defer close(out)
		buf := make([]byte, bufSize)
		for {
			if _, err := notify.Read(buf); err != nil {
				return
			}
			// The notification comes as the cgroup runs out of memory,
			// before the victim is killed and its pages freed: read the
			// breakdown now, then wait for the kill to be counted.
			m, err := memory()
			if err != nil {
				return // the cgroup is gone
			}
			kills, ok := waitForKill(ctx, count, seen)
			if !ok {
				continue // reclaim sufficed, or the cgroup went away
			}
			seen = kills
			select {
			case out <- OOMEvent{Time: time.Now(), Kills: kills, Memory: m}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
