package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// OOMVictim is what the kernel's log says of an OOM kill: the process it
// chose, and whose limit ran out (the container's cgroup, or a parent's,
// such as a pod's with pod-level limits).
type OOMVictim struct {
	Pid  int    `json:"pid"`
	Comm string `json:"comm"`
	// LimitCgroup is the cgroup whose limit was hit (oom_memcg); TaskCgroup
	// the victim's (task_memcg). Paths are the memory hierarchy's.
	LimitCgroup string `json:"limitCgroup"`
	TaskCgroup  string `json:"taskCgroup"`
	// Memory is LimitCgroup's memory as the kernel printed it before it
	// killed (usage, limit, kernel, and the breakdown of memory.stat):
	// exact at the kill, where a read of the cgroup after the kernel's
	// notification may already see the victim's pages freed. Nil when
	// the kernel's rate limit left the dump out, or when its breakdown
	// does not hold the usage (see OOMDump).
	Memory *MemoryStats `json:"memory,omitempty"`
	// At is the kill's time in the log, since boot.
	At time.Duration `json:"-"`
}

// FindOOMVictim reads the kernel's log (/dev/kmsg, which root may read;
// each read is one record) for the last OOM kill of a process in cgroup,
// or under it. None found is no error: the log may have wrapped.
func FindOOMVictim(cgroup string) (*OOMVictim, error) {
	// Raw reads, not an *os.File: Go would park a non-blocking read in
	// its poller until a new record came, where the end of the log must
	// answer EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var d OOMDump
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err == nil && n == 0 {
			err = io.EOF
		}
		if err != nil {
			// EAGAIN: the end of the log; EPIPE: a record was
			// overwritten while reading, go on with the next.
			if errors.Is(err, syscall.EPIPE) {
				continue
			}
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, io.EOF) {
				return d.Last(cgroup), nil
			}
			return d.Last(cgroup), err
		}
		d.Add(string(buf[:n]))
	}
}

// OOMDump reads the kernel's account of memory cgroup OOM kills, one log
// record at a time in the log's order (mm/memcontrol.c
// mem_cgroup_print_oom_meminfo, then mm/oom_kill.c dump_oom_victim):
//
//	memory: usage 49152kB, limit 49152kB, failcnt 0
//	kmem: usage 152kB, limit 9007199254740988kB, failcnt 0   (v1)
//	Memory cgroup stats for /crid/p1:
//	total_rss 50176000                                       (v1; v2: anon 50176000)
//	...
//	oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/crid/p1,task_memcg=/crid/p1/c1,task=sh,pid=12,uid=0
//
// Kills are serialized by the kernel's oom_lock, so one kill's lines do
// not interleave with another's. The zero value is ready.
//
// The dump's memory.stat is not always the moment's. The kernel prints
// its counters as last flushed, and has printed them stale beside a
// kubelet's stats reads (6.18, v1: a pod at its 32Mi limit with
// total_rss 0 while its tail held 8000 pages). The task list after it
// (mm/oom_kill.c dump_tasks) counts each process's pages from its own mm,
// never stale, and stands in for a breakdown that holds too little of
// the usage. A kill can also come while the last one's victim is still
// giving its memory back (head killed 10 ms after tail, the cgroup still
// at its limit but its counters already without tail's pages): such a
// dump's breakdown holds little of its usage and says nothing of what
// filled it. A breakdown that holds under half the usage is left out,
// and Last takes the kill before it.
type OOMDump struct {
	mem      *MemoryStats      // the dump under way, from its usage line
	stat     map[string]uint64 // its memory.stat lines
	anonCol  int               // the task list's rss_anon column, 0: none yet
	taskAnon uint64            // pages: the task list's rss_anon, summed
	at       time.Duration     // the record's time
	victims  []*OOMVictim
}

// Add takes the next record of the log (a /dev/kmsg record, its header
// before ';' optional: "priority,sequence,microseconds,flags;").
func (d *OOMDump) Add(record string) {
	if head, msg, ok := strings.Cut(record, ";"); ok {
		record = msg
		// The third field: Cut, not Split, for the ring's every record.
		_, rest, _ := strings.Cut(head, ",")
		_, rest, _ = strings.Cut(rest, ",")
		ts, _, _ := strings.Cut(rest, ",")
		if us, err := strconv.ParseInt(ts, 10, 64); err == nil {
			d.at = time.Duration(us) * time.Microsecond
		}
	}
	// The message ends at the first newline; dictionary lines (" KEY=v")
	// may follow. Kernels before 6.5 print memory.stat as one message of
	// many lines, which /dev/kmsg escapes as \x0a.
	record, _, _ = strings.Cut(record, "\n")
	for _, line := range strings.Split(record, `\x0a`) {
		d.line(line)
	}
}

func (d *OOMDump) line(record string) {
	switch {
	case strings.HasPrefix(record, "oom-kill:"):
		v, ok := ParseOOMKillRecord(record)
		if !ok {
			return
		}
		v.At = d.at
		// Usage and limit without a memory.stat are not a breakdown, nor
		// one that holds under half the usage (see OOMDump).
		_, v1 := d.stat["total_rss"]
		if _, v2 := d.stat["anon"]; v1 || v2 {
			if m := d.memory(); accounts(m) {
				v.Memory = m
			}
		}
		d.reset()
		d.victims = append(d.victims, v)
	case strings.Contains(record, " invoked oom-killer: "):
		d.reset() // a new kill's dump begins
	case strings.HasPrefix(record, "memory: usage "):
		var usage, limit uint64
		if _, err := fmt.Sscanf(record, "memory: usage %dkB, limit %dkB", &usage, &limit); err == nil {
			d.reset()
			d.mem, d.stat = &MemoryStats{Usage: usage << 10, Limit: limit << 10}, map[string]uint64{}
		}
	case d.mem == nil:
	case strings.HasPrefix(record, "[  pid  ]"):
		d.anonCol = 0
		for i, col := range strings.Fields(record) {
			if col == "rss_anon" {
				d.anonCol = i - 3 // a row's fields after its "]" begin at uid
			}
		}
	case strings.HasPrefix(record, "["):
		// [  29816]     0 29816     8784     8461     8000 ... tail
		if _, row, ok := strings.Cut(record, "]"); ok && d.anonCol > 0 {
			if f := strings.Fields(row); len(f) > d.anonCol {
				if n, err := strconv.ParseUint(f[d.anonCol], 10, 64); err == nil {
					d.taskAnon += n
				}
			}
		}
	case strings.HasPrefix(record, "kmem: usage "):
		var kmem uint64
		if _, err := fmt.Sscanf(record, "kmem: usage %dkB", &kmem); err == nil {
			d.stat["kmem"] = kmem << 10
		}
	default:
		k, v, ok := strings.Cut(record, " ")
		if n, err := strconv.ParseUint(v, 10, 64); ok && err == nil {
			d.stat[k] = n
		}
	}
}

// memory is the dump's figures: v1's hierarchical totals (its plain
// names are the cgroup's own pages alone, none for a pod's cgroup whose
// pages are its containers'), or v2's memory.stat, hierarchical already.
func (d *OOMDump) memory() *MemoryStats {
	m, st := *d.mem, d.stat
	if _, v1 := st["total_rss"]; v1 {
		m.RSS, m.Cache, m.Shmem = st["total_rss"], st["total_cache"], st["total_shmem"]
		m.ActiveFile, m.InactiveFile, m.Kernel = st["total_active_file"], st["total_inactive_file"], st["kmem"]
	} else {
		m.RSS, m.Cache, m.Shmem = st["anon"], st["file"], st["shmem"]
		m.ActiveFile, m.InactiveFile, m.Kernel = st["active_file"], st["inactive_file"], st["kernel"]
	}
	if !accounts(&m) {
		// The task list's sum is the stale counters' stand-in only: it
		// counts a page shared by forks once per process, and pages a
		// process faulted before it joined the cgroup (v1 leaves them
		// charged where they were), so it never raises a breakdown that
		// holds, and never past what the usage leaves.
		m.RSS = min(d.taskAnon*uint64(os.Getpagesize()), m.Usage-min(m.Usage, m.Cache+m.Kernel))
	}
	m.WorkingSet = m.Usage - min(m.Usage, m.InactiveFile)
	return &m
}

func (d *OOMDump) reset() {
	d.mem, d.stat, d.anonCol, d.taskAnon = nil, nil, 0, 0
}

// accounts says whether m's breakdown holds at least half its usage.
func accounts(m *MemoryStats) bool {
	return m.RSS+m.Cache+m.Kernel >= m.Usage/2
}

// burst is how close kills are to be one running out: the kernel kills
// again while its last victim is still exiting (10 ms apart, seen).
const burst = 2 * time.Second

// Last is the latest kill of a process in cgroup or under it, nil if
// none: of the kills in the burst that ends with it, the latest with a
// breakdown, so that a kill while the last victim still exits does not
// hide what filled the limit.
func (d *OOMDump) Last(cgroup string) *OOMVictim {
	var last *OOMVictim
	for i := len(d.victims) - 1; i >= 0; i-- {
		v := d.victims[i]
		if !under(v.TaskCgroup, cgroup) {
			continue
		}
		if last == nil {
			last = v
		}
		if last.At-v.At > burst {
			break
		}
		if v.Memory != nil {
			return v
		}
	}
	return last
}

// ParseOOMKillRecord reads the kernel's one-line summary of an OOM kill
// (mm/oom_kill.c dump_oom_victim, Linux 4.19+), as /dev/kmsg gives it:
//
//	6,1234,5678,-;oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/a,task_memcg=/a/b,task=sh,pid=12,uid=0
//
// The cgroup paths are the kubelet's and crid's, read from the left; the
// command name is the tenant's (any 15 bytes, commas and "pid=" too), so
// it is what lies between "task=" and the last ",pid=".
func ParseOOMKillRecord(record string) (*OOMVictim, bool) {
	if _, msg, ok := strings.Cut(record, ";"); ok {
		record = msg
	}
	record, _, _ = strings.Cut(record, "\n")
	fields, ok := strings.CutPrefix(record, "oom-kill:")
	if !ok {
		return nil, false
	}
	_, rest, ok := strings.Cut(fields, ",oom_memcg=")
	if !ok {
		return nil, false
	}
	v := &OOMVictim{}
	v.LimitCgroup, rest, ok = strings.Cut(rest, ",task_memcg=")
	if !ok {
		return nil, false
	}
	v.TaskCgroup, rest, ok = strings.Cut(rest, ",task=")
	i := strings.LastIndex(rest, ",pid=")
	if !ok || i < 0 {
		return nil, false
	}
	v.Comm = rest[:i]
	pid, _, _ := strings.Cut(rest[i+len(",pid="):], ",")
	v.Pid, _ = strconv.Atoi(pid)
	return v, v.Pid > 0
}

// under says whether p is cgroup or a descendant of it.
func under(p, cgroup string) bool {
	return p == cgroup || strings.HasPrefix(p, strings.TrimSuffix(cgroup, "/")+"/")
}
