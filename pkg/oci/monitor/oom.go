package monitor

import (
	"context"
	"time"

	"github.com/crid-dev/crid/pkg/cgroups"
)

// OOMReport says what filled a container's memory when the kernel killed
// a process of it for want of memory: the page cache charged to the
// cgroup counts toward its limit, so a container can be OOM-killed while
// its processes' own memory looks small, and `free` on the host looks
// fine. Bytes.
type OOMReport struct {
	// AtKill says the breakdown is of the moment of the kill: the
	// kernel's own figures from its log, or else a read at its
	// out-of-memory notification (which may see some of the victim's
	// pages freed already). Otherwise it was read at the exit.
	AtKill bool `json:"atKill"`
	// Cgroup is whose memory the figures are: the cgroup whose limit ran
	// out (the kernel's figures), else the container's.
	Cgroup       string `json:"cgroup,omitempty"`
	Limit        uint64 `json:"limit"` // MaxUint64: none of the container's own
	Usage        uint64 `json:"usage"`
	Anon         uint64 `json:"anon"`
	File         uint64 `json:"file"` // page cache
	ActiveFile   uint64 `json:"activeFile"`
	InactiveFile uint64 `json:"inactiveFile"`
	Shmem        uint64 `json:"shmem"` // the part of File in tmpfs
	Kernel       uint64 `json:"kernel"`
	// Victim is the kernel log's account of the kill, when it has one.
	Victim *cgroups.OOMVictim `json:"victim,omitempty"`
}

// OOMWatch keeps the last out-of-memory notification of a container's
// cgroup, for the report at its exit. Its goroutine ends with Close.
type OOMWatch struct {
	events <-chan cgroups.OOMEvent
	stop   context.CancelFunc
	last   chan cgroups.OOMEvent // holds the latest event, at most one
}

// WatchOOM watches cg from now on; nil when it cannot (the report is
// then read at the exit).
func WatchOOM(cg cgroups.Manager) *OOMWatch {
	ctx, cancel := context.WithCancel(context.Background())
	events, err := cg.WatchOOM(ctx)
	if err != nil {
		cancel()
		return nil
	}
	w := &OOMWatch{events: events, stop: cancel, last: make(chan cgroups.OOMEvent, 1)}
	go func() {
		for e := range events {
			select {
			case <-w.last: // replaced by the newer
			default:
			}
			w.last <- e
		}
	}()
	return w
}

// Report is the breakdown of a container killed for want of memory. The
// notification and the kill race the exit: it waits up to wait for one.
func (w *OOMWatch) Report(cg cgroups.Manager, wait time.Duration) *OOMReport {
	r := &OOMReport{}
	var ev *cgroups.OOMEvent
	if w != nil {
		select {
		case e := <-w.last:
			ev = &e
		case <-time.After(wait):
		}
	}
	if v, err := cgroups.FindOOMVictim(cg.Path()); err == nil && v != nil {
		r.Victim = v
	}
	switch {
	case r.Victim != nil && r.Victim.Memory != nil:
		r.AtKill, r.Cgroup = true, r.Victim.LimitCgroup
		fill(r, *r.Victim.Memory)
	case ev != nil:
		r.AtKill, r.Cgroup = true, cg.Path()
		fill(r, ev.Memory)
	default:
		if st, err := cg.Stats(); err == nil {
			r.Cgroup = cg.Path()
			fill(r, st.Memory)
		}
	}
	return r
}

func fill(r *OOMReport, m cgroups.MemoryStats) {
	r.Limit, r.Usage, r.Anon, r.File = m.Limit, m.Usage, m.RSS, m.Cache
	r.ActiveFile, r.InactiveFile, r.Shmem, r.Kernel = m.ActiveFile, m.InactiveFile, m.Shmem, m.Kernel
}

// Close ends the watch.
func (w *OOMWatch) Close() {
	if w != nil {
		w.stop()
	}
}
