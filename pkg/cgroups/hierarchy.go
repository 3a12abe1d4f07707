package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Manager is one cgroup, a pod's or a container's, on every hierarchy the
// host has. The same interface covers v1, hybrid and v2.
type Manager interface {
	// Path is the cgroup's path from the hierarchy root, as the kubelet
	// names it (/kubepods/burstable/pod<uid>/<container>).
	Path() string
	Mode() Mode
	// Create makes the cgroup and any missing parents, and applies r.
	Create(r *Resources) error
	// Add moves a process into the cgroup.
	Add(pid int) error
	// JoinFiles are the files a process writes 0 to, to put itself in the
	// cgroup: each v1 hierarchy's "tasks" (the writing thread alone: done
	// before a process has a second thread, it spares the kernel the
	// synchronize_rcu that moving a whole process costs), v2's
	// "cgroup.procs". Each lists the cgroup's members too: none of them
	// lists any when the cgroup is empty.
	JoinFiles() []string
	// Update applies new limits to the cgroup as it runs (in-place resize).
	Update(r *Resources) error
	// Stats is what the CRI's stats report (the kubelet asks every few
	// seconds for every container); DetailedStats adds what only the CRI
	// metrics report (peak, limit hits, swap, the limits set), at twice
	// the file reads.
	Stats() (*Stats, error)
	DetailedStats() (*Stats, error)
	// CPUStats is the CPU time used and the CFS throttling alone, for the
	// throttling watch's look at every running container each window: a
	// fifth of Stats's reads on v1 (no memory.stat), one file on v2.
	CPUStats() (CPUStats, error)
	// OOMKills counts the processes the kernel has OOM-killed in the cgroup.
	OOMKills() (uint64, error)
	// OOMKillsFile is the file OOMKills reads (its "oom_kill N" line),
	// for a reader in another language: crid-podmon reads it at a
	// container's exit. Empty without a memory controller.
	OOMKillsFile() string
	// WatchOOM reports each OOM kill as it happens, with what filled the
	// memory, until ctx ends; the channel is closed then.
	WatchOOM(ctx context.Context) (<-chan OOMEvent, error)
	// Pids lists the processes in the cgroup.
	Pids() ([]int, error)
	// CloneInto opens the cgroup for clone3's CLONE_INTO_CGROUP, so a
	// child is born in it rather than moved there (on cgroup v2 only:
	// ErrNoCloneInto on v1 hierarchies, where the caller moves it).
	CloneInto() (*os.File, error)
	// KillAll SIGKILLs every process in the cgroup (cgroup.kill on v2;
	// freeze, kill, thaw on v1) until none is left, or ctx ends.
	KillAll(ctx context.Context) error
	// Destroy kills every process left in the cgroup and removes it from
	// every hierarchy. Destroying a cgroup that is gone succeeds.
	Destroy(ctx context.Context) error
}

// ErrNoCloneInto says a cgroup cannot take a child at clone: v1.
var ErrNoCloneInto = errors.New("clone into a cgroup needs cgroup v2")

// Hierarchy is how this host mounts cgroups.
type Hierarchy struct {
	Mode Mode
	// Unified is the cgroup2 mountpoint (v2 mode), if any.
	Unified string
	// V1 maps each v1 controller to its mountpoint (v1 and hybrid modes).
	V1 map[string]string
	// TolerateMissingHugetlb accepts positive hugepage limits, unenforced,
	// where the hugetlb controller is missing (hugetlb.go).
	TolerateMissingHugetlb bool
}

// v1Controllers are the v1 hierarchies a cgroup is made in, when mounted.
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "hugetlb", "devices", "freezer"}

// Discover reads the host's layout from /proc/self/mountinfo.
func Discover() (*Hierarchy, error) {
	mounts, err := Mounts()
	if err != nil {
		return nil, err
	}
	return DiscoverFrom(mounts)
}

// MountsEnv carries Mounts from crid to the processes it starts beside
// pods (the monitor, and from it each container's init).
const MountsEnv = "CRID_CGROUP_MOUNTS"

// Mounts is the cgroup lines of /proc/self/mountinfo. The kernel writes
// mountinfo out at about 33 µs a mount: 119 ms on a node of 250 pods
// (3600 mounts), which every pod's monitor and every container's init
// paid to find a dozen cgroup mounts. crid reads it once, at start, and
// hands these lines on (MountsEnv).
func Mounts() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if _, post, ok := strings.Cut(sc.Text(), " - "); ok && (strings.HasPrefix(post, "cgroup ") || strings.HasPrefix(post, "cgroup2 ")) {
			b.WriteString(sc.Text())
			b.WriteByte('\n')
		}
	}
	return b.String(), sc.Err()
}

// DiscoverFrom is Discover from mountinfo lines (Mounts).
func DiscoverFrom(mounts string) (*Hierarchy, error) {
	mode, err := DetectMode(DefaultMountpoint)
	if err != nil {
		return nil, err
	}
	return parseMountinfo(strings.NewReader(mounts), mode)
}

func parseMountinfo(f io.Reader, mode Mode) (*Hierarchy, error) {
	h := &Hierarchy{Mode: mode, V1: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(postFields) < 3 {
			continue
		}
		mountpoint := unescape(fields[4])
		switch postFields[0] {
		case "cgroup2":
			if mode == Unified && mountpoint == DefaultMountpoint {
				h.Unified = mountpoint
			}
		case "cgroup":
			for _, opt := range strings.Split(postFields[2], ",") {
				for _, c := range v1Controllers {
					if opt == c {
						if _, dup := h.V1[c]; !dup {
							h.V1[c] = mountpoint
						}
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	switch {
	case mode == Unified && h.Unified == "":
		return nil, errors.New("cgroup2 is not mounted at " + DefaultMountpoint)
	case mode != Unified && h.V1["memory"] == "":
		return nil, errors.New("the v1 memory controller is not mounted")
	}
	return h, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// String says what crid will use, for logs and Status.
func (h *Hierarchy) String() string {
	if h.Mode == Unified {
		return "cgroup v2 (unified) at " + h.Unified
	}
	var cs []string
	for _, c := range v1Controllers {
		if _, ok := h.V1[c]; ok {
			cs = append(cs, c)
		}
	}
	return fmt.Sprintf("cgroup %s, v1 controllers %s", h.Mode, strings.Join(cs, ","))
}

// Manager returns the manager of the cgroup at p (see CleanPath).
func (h *Hierarchy) Manager(p string) (Manager, error) {
	clean, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	if h.Mode == Unified {
		return &v2{root: h.Unified, path: clean, tolerateHugetlb: h.TolerateMissingHugetlb}, nil
	}
	return &v1{mounts: h.V1, path: clean, mode: h.Mode, tolerateHugetlb: h.TolerateMissingHugetlb}, nil
}

// CleanPath checks a cgroupfs path and returns it clean and absolute. A
// systemd slice name ("kubepods-burstable.slice") means the kubelet runs
// the systemd cgroup driver, which crid does not: the error says so.
func CleanPath(p string) (string, error) {
	if p == "" || p == "/" {
		return "", errors.New("cgroup path is empty: crid never manages the root cgroup")
	}
	if strings.HasSuffix(strings.Split(strings.TrimPrefix(p, "/"), "/")[0], ".slice") || strings.Contains(p, ".slice:") {
		return "", fmt.Errorf("cgroup path %q is a systemd slice: the kubelet uses the systemd cgroup driver, and crid uses cgroupfs; set the kubelet's cgroupDriver to cgroupfs", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("cgroup path %q climbs with ..", p)
		}
	}
	return path.Clean("/" + p), nil
}

// Join is the cgroup path of child under parent, checked.
func Join(parent, child string) (string, error) {
	if strings.ContainsAny(child, "/") || child == "" || child == "." || child == ".." {
		return "", fmt.Errorf("cgroup name %q is not a single path component", child)
	}
	return CleanPath(path.Join("/", parent, child))
}

// readFile reads a cgroup file, trimmed.
func readFile(dir, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// writeFile writes a cgroup file; the error names the file and the value.
func writeFile(dir, name, value string) error {
	p := filepath.Join(dir, name)
	// One write(2) per value, never O_CREAT: a missing file is a missing
	// controller, not something to make. O_TRUNC is ignored by cgroupfs.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		// The kernel parses what it is given: EINVAL and ERANGE are a
		// value this node cannot take (a cpuset past its CPUs, a limit out
		// of range), EBUSY one it cannot take now (a memory limit below
		// what the cgroup uses). The caller must hear which, not Unknown.
		switch {
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ERANGE):
			err = fmt.Errorf("%w (%w)", err, errdefs.ErrInvalidArgument)
		case errors.Is(err, unix.EBUSY):
			err = fmt.Errorf("%w (%w)", err, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

// readUint reads a file holding one number ("max" reads as MaxUint64).
func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return ^uint64(0), nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// readKV reads a "key value" per line file (memory.stat, cpu.stat).
func readKV(dir, name string) (map[string]uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

func readPids(dir string) ([]int, error) {
	s, err := readFile(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// removeDir removes one cgroup directory, retrying while the kernel still
// counts exiting processes in it.
func removeDir(ctx context.Context, dir string) error {
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove cgroup %s: %w (last error: %v)", dir, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// children lists the child cgroups of dir.
func children(dir string) []string {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}
