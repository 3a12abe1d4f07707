// Package cgroups manages the cgroups of pods and containers: the layout
// the host uses (v1, hybrid or v2), limits, stats and OOM events.
package cgroups

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Mode is how the host mounts cgroups.
type Mode int

const (
	// Legacy: every controller on its own v1 hierarchy.
	Legacy Mode = iota + 1
	// Hybrid: v1 controllers, plus an (often empty) cgroup2 at
	// /sys/fs/cgroup/unified. Controllers are managed through v1.
	Hybrid
	// Unified: one cgroup2 hierarchy at /sys/fs/cgroup.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "v1"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "v2"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// DefaultMountpoint is where cgroup hierarchies are mounted.
const DefaultMountpoint = "/sys/fs/cgroup"

// DetectMode reads the layout under root (normally DefaultMountpoint) from
// the filesystem types mounted there.
func DetectMode(root string) (Mode, error) {
	return detectMode(root, fsType)
}

func fsType(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Type, nil
}

func detectMode(root string, statfs func(string) (int64, error)) (Mode, error) {
	t, err := statfs(root)
	if err != nil {
		return 0, fmt.Errorf("statfs %s: %w", root, err)
	}
	switch t {
	case unix.CGROUP2_SUPER_MAGIC:
		return Unified, nil
	case unix.TMPFS_MAGIC:
	default:
		return 0, fmt.Errorf("%s is neither a cgroup2 mount nor a tmpfs of v1 hierarchies (fs type %#x)", root, t)
	}
	if t, err := statfs(root + "/unified"); err == nil && t == unix.CGROUP2_SUPER_MAGIC {
		return Hybrid, nil
	}
	return Legacy, nil
}
