// Package cgroupstest is a cgroup hierarchy in memory, for the unit tests
// of the packages that make cgroups (pods', containers'): it records what
// was made with which limits, and fails on demand.
package cgroupstest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/crid-dev/crid/pkg/cgroups"
)

// Hierarchy hands out cgroups that live in its maps.
type Hierarchy struct {
	mu    sync.Mutex
	made  map[string]*cgroups.Resources // path -> limits applied
	stats map[string]*cgroups.Stats     // what Stats answers, by path
	// CreateErr, when set, fails every Create.
	CreateErr error
}

// New returns an empty hierarchy.
func New() *Hierarchy {
	return &Hierarchy{made: map[string]*cgroups.Resources{}, stats: map[string]*cgroups.Stats{}}
}

// SetStats sets what the cgroup at path reports.
func (h *Hierarchy) SetStats(path string, st cgroups.Stats) {
	h.mu.Lock()
	h.stats[path] = &st
	h.mu.Unlock()
}

// Manager returns the cgroup at path, made or not.
func (h *Hierarchy) Manager(path string) (cgroups.Manager, error) {
	return &cgroup{h: h, path: path}, nil
}

// Limits are the limits of the cgroup at path, nil when it is not made.
func (h *Hierarchy) Limits(path string) *cgroups.Resources {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.made[path].DeepCopy()
}

// Made lists the cgroups that exist, sorted.
func (h *Hierarchy) Made() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for p := range h.made {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// SetCreateErr sets CreateErr under the hierarchy's lock.
func (h *Hierarchy) SetCreateErr(err error) {
	h.mu.Lock()
	h.CreateErr = err
	h.mu.Unlock()
}

// cgroup is one cgroup of the hierarchy; what the managers do not use
// panics (the embedded nil interface).
type cgroup struct {
	cgroups.Manager
	h    *Hierarchy
	path string
}

func (c *cgroup) Path() string { return c.path }

func (c *cgroup) Create(r *cgroups.Resources) error {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	if c.h.CreateErr != nil {
		return c.h.CreateErr
	}
	if r == nil {
		r = &cgroups.Resources{}
	}
	c.h.made[c.path] = r.DeepCopy()
	return nil
}

func (c *cgroup) Update(r *cgroups.Resources) error {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	cur, ok := c.h.made[c.path]
	if !ok {
		return fmt.Errorf("cgroup %s: %w", c.path, os.ErrNotExist)
	}
	applied := cur.With(r)
	c.h.made[c.path] = &applied
	return nil
}

func (c *cgroup) Stats() (*cgroups.Stats, error) {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	st, ok := c.h.stats[c.path]
	if !ok {
		return nil, fmt.Errorf("cgroup %s has no stats: %w", c.path, os.ErrNotExist)
	}
	out := *st
	return &out, nil
}

func (c *cgroup) CPUStats() (cgroups.CPUStats, error) {
	st, err := c.Stats()
	if err != nil {
		return cgroups.CPUStats{}, err
	}
	return st.CPU, nil
}

func (c *cgroup) JoinFiles() []string { return []string{"/sys/fs/cgroup" + c.path + "/cgroup.procs"} }

func (c *cgroup) Destroy(context.Context) error {
	c.h.mu.Lock()
	delete(c.h.made, c.path)
	c.h.mu.Unlock()
	return nil
}
