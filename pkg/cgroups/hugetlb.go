package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Huge pages on a host that cannot limit them.
//
// The kubelet sends a HugepageLimit for every page size the node has
// (/sys/kernel/mm/hugepages), 0 for each size the pod does not ask for,
// on every container (pkg/kubelet/kuberuntime, kuberuntime_container_linux.go).
// Hosts often have the hugetlb controller listed but not mounted (this one
// has), or not enabled on v2. A limit of 0 there asks for nothing crid can
// give: no container can be kept from pages that the host could not count
// for it anyway, so it is accepted, and said once at start-up
// (HugetlbReport). A positive limit is a promise crid cannot keep: it is
// refused, FailedPrecondition naming the controller, unless the operator
// set runtime.tolerate_missing_hugetlb_controller (containerd's key), as
// containerd does and CRI-O skips them.

// asksNothing says whether a Unified key whose file the host lacks asks
// for nothing the host could give. A kubelet (v1.37) on cgroup v2 sends
// memory.high "max" on every container (clearing a MemoryQoS throttle)
// and memory.swap.max ("0" with swap off): "max" limits nothing, and a
// swap limit asks nothing of a host that has no swap.
func asksNothing(key, value string) bool {
	if value == "max" {
		return true
	}
	if key == "memory.swap.max" {
		return hostSwapTotal() == 0
	}
	return false
}

// hostSwapTotal is the host's swap in kB, from /proc/meminfo (-1 if it
// cannot be read).
func hostSwapTotal() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "SwapTotal:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// hugepageLimit decides what to do with one limit where the controller may
// be missing: write it (true), skip it (false), or refuse it.
func hugepageLimit(h HugepageLimit, have, tolerate bool) (bool, error) {
	switch {
	case have:
		return true, nil
	case h.Limit == 0 || tolerate:
		return false, nil
	}
	return false, fmt.Errorf("hugepage limit of %d bytes for %s pages: the hugetlb controller is not available on this host, so it cannot be enforced (mount or enable it, or set runtime.tolerate_missing_hugetlb_controller to accept such limits unenforced): %w",
		h.Limit, h.PageSize, errdefs.ErrFailedPrecondition)
}

// HasController says whether the host can apply a controller's limits:
// mounted (v1), or available to crid's cgroups (v2).
func (h *Hierarchy) HasController(name string) bool {
	if h.Mode == Unified {
		data, err := os.ReadFile(filepath.Join(h.Unified, "cgroup.controllers"))
		return err == nil && containsField(string(data), name)
	}
	return h.V1[name] != ""
}

func containsField(s, f string) bool {
	for _, x := range strings.Fields(s) {
		if x == f {
			return true
		}
	}
	return false
}

// HugetlbReport says what start-up should tell the operator about huge
// pages, "" for nothing: the controller is missing, and, worse, the host
// has huge pages reserved, which its containers may then take without
// limit.
func (h *Hierarchy) HugetlbReport(tolerate bool) (info, warning string) {
	if h.HasController("hugetlb") {
		return "", ""
	}
	info = "the hugetlb controller is not available: hugepage limits of 0 (the kubelet's for every size a pod does not ask for) are accepted unenforced"
	if tolerate {
		info += "; positive limits too (runtime.tolerate_missing_hugetlb_controller)"
	} else {
		info += "; positive limits are refused"
	}
	var reserved []string
	dirs, _ := filepath.Glob("/sys/kernel/mm/hugepages/hugepages-*")
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, "nr_hugepages"))
		if n, _ := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && n > 0 {
			reserved = append(reserved, fmt.Sprintf("%d of %s", n, strings.TrimPrefix(filepath.Base(d), "hugepages-")))
		}
	}
	if len(reserved) > 0 {
		warning = fmt.Sprintf("this host has huge pages reserved (%s) and no hugetlb controller: every container may use them without limit", strings.Join(reserved, ", "))
	}
	return info, warning
}
