package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Resources are the limits of a pod or container, in the CRI's units.
// A zero field leaves the kernel's value (or the parent's) in place.
type Resources struct {
	CPUShares  uint64 // v1 cpu.shares; v2 cpu.weight by ShareToWeight
	CPUQuota   int64  // microseconds per period; -1 for no limit
	CPUPeriod  uint64 // microseconds
	CPUSetCPUs string
	CPUSetMems string
	// MemoryLimit in bytes; -1 for no limit.
	MemoryLimit int64
	// MemorySwapLimit is memory plus swap, in bytes, as the CRI and runc
	// say it (v1 memory.memsw.limit_in_bytes); -1 for unlimited swap. On
	// v2 the swap part alone goes to memory.swap.max.
	MemorySwapLimit int64
	PidsLimit       int64 // -1 for no limit
	HugepageLimits  []HugepageLimit
	// Unified holds cgroup v2 files and values to write as given, for keys
	// the CRI has no field for (io.weight, io.max, memory.high...).
	Unified map[string]string
	// Devices are the device rules, in order, the first usually denying
	// everything; nil leaves the rules as they are (a new cgroup's are
	// its parent's).
	Devices []DeviceRule
}

// DeepCopy returns a copy of r sharing nothing with it; nil stays nil.
func (r *Resources) DeepCopy() *Resources {
	if r == nil {
		return nil
	}
	c := *r
	// nil and empty differ (nil Devices leave the rules as they are).
	if r.HugepageLimits != nil {
		c.HugepageLimits = append([]HugepageLimit{}, r.HugepageLimits...)
	}
	if r.Devices != nil {
		c.Devices = append([]DeviceRule{}, r.Devices...)
	}
	if r.Unified != nil {
		c.Unified = make(map[string]string, len(r.Unified))
		for k, v := range r.Unified {
			c.Unified[k] = v
		}
	}
	return &c
}

// DeviceRule allows or denies devices: Type 'a' (every device), 'c' or
// 'b'; Major and Minor -1 for any; Access some of "rwm".
type DeviceRule struct {
	Allow        bool
	Type         byte
	Major, Minor int64
	Access       string
}

// String is the rule as cgroup v1's devices.allow and devices.deny take
// it: "c 1:3 rwm", "b *:* m", "a *:* rwm".
func (d DeviceRule) String() string {
	num := func(n int64) string {
		if n < 0 {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", d.Type, num(d.Major), num(d.Minor), d.Access)
}

// HugepageLimit limits one hugepage size, named as the kernel names it
// ("2MB", "1GB").
type HugepageLimit struct {
	PageSize string
	Limit    uint64
}

// Validate refuses values no kernel would take, naming the field.
func (r *Resources) Validate() error {
	var errs []error
	if r.CPUQuota < -1 {
		errs = append(errs, fmt.Errorf("cpu_quota %d: must be -1 (unlimited) or positive", r.CPUQuota))
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		errs = append(errs, fmt.Errorf("cpu_quota %d: the kernel's minimum is 1000 microseconds", r.CPUQuota))
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		errs = append(errs, fmt.Errorf("cpu_period %d: must be 1000 to 1000000 microseconds", r.CPUPeriod))
	}
	if r.CPUShares != 0 && (r.CPUShares < 2 || r.CPUShares > 262144) {
		errs = append(errs, fmt.Errorf("cpu_shares %d: must be 2 to 262144", r.CPUShares))
	}
	if r.MemoryLimit < -1 {
		errs = append(errs, fmt.Errorf("memory_limit_in_bytes %d: must be -1 or positive", r.MemoryLimit))
	}
	if r.MemorySwapLimit < -1 {
		errs = append(errs, fmt.Errorf("memory_swap_limit_in_bytes %d: must be -1 or positive", r.MemorySwapLimit))
	}
	if r.MemorySwapLimit > 0 && r.MemoryLimit > 0 && r.MemorySwapLimit < r.MemoryLimit {
		errs = append(errs, fmt.Errorf("memory_swap_limit_in_bytes %d is below memory_limit_in_bytes %d: it counts memory plus swap", r.MemorySwapLimit, r.MemoryLimit))
	}
	if r.MemorySwapLimit > 0 && r.MemoryLimit <= 0 {
		errs = append(errs, fmt.Errorf("memory_swap_limit_in_bytes needs memory_limit_in_bytes"))
	}
	if r.PidsLimit < -1 {
		errs = append(errs, fmt.Errorf("pids limit %d: must be -1 or positive", r.PidsLimit))
	}
	for _, h := range r.HugepageLimits {
		if !validPageSize(h.PageSize) {
			errs = append(errs, fmt.Errorf("hugepage_limits: page size %q is not like 2MB or 1GB", h.PageSize))
		}
	}
	for i, d := range r.Devices {
		if !strings.ContainsRune("abc", rune(d.Type)) || d.Type == 0 || d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
			errs = append(errs, fmt.Errorf("devices[%d]: %q is not a device rule (type a, b or c; access of r, w, m)", i, d.String()))
		}
	}
	for k := range r.Unified {
		if k == "" || strings.ContainsAny(k, "/\x00") || k == "." || k == ".." || !strings.Contains(k, ".") {
			errs = append(errs, fmt.Errorf("unified: %q is not a cgroup file name", k))
		}
		if strings.HasPrefix(k, "cgroup.") {
			errs = append(errs, fmt.Errorf("unified: %q is cgroup core: crid manages it", k))
		}
	}
	return errors.Join(errs...)
}

func validPageSize(s string) bool {
	n := strings.TrimRight(s, "KMGB")
	if n == "" || n == s || !strings.HasSuffix(s, "B") {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ShareToWeight maps cgroup v1 cpu.shares (2..262144) onto v2 cpu.weight
// (1..10000) linearly, as runc does, so that the default 1024 shares is
// weight 39 on both runc and crid and mixed nodes schedule alike.
func ShareToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < 2 {
		shares = 2
	}
	if shares > 262144 {
		shares = 262144
	}
	return 1 + ((shares-2)*9999)/262142
}

// WeightToShare is ShareToWeight's inverse (to the nearest share the
// integer mapping lost), for reporting a v2 weight as the shares asked.
func WeightToShare(weight uint64) uint64 {
	if weight == 0 {
		return 0
	}
	return 2 + ((weight-1)*262142+9998)/9999
}

// cpuMax is the v2 cpu.max value for a quota and period.
func cpuMax(quota int64, period uint64) string {
	if period == 0 {
		period = 100000
	}
	if quota <= 0 {
		return fmt.Sprintf("max %d", period)
	}
	return fmt.Sprintf("%d %d", quota, period)
}

// limitString is "max" for -1, the number otherwise.
func limitString(v int64) string {
	if v < 0 {
		return "max"
	}
	return fmt.Sprint(v)
}

// swapMax is the v2 memory.swap.max for a CRI memory+swap limit: the swap
// part alone, "max" for unlimited swap, "" to leave it.
func swapMax(memory, memSwap int64) string {
	switch {
	case memSwap == -1:
		return "max"
	case memSwap > 0 && memory > 0:
		return fmt.Sprint(memSwap - memory)
	}
	return ""
}

// With returns r changed by u as Update applies u: each field u sets
// (non-zero) replaces r's, the rest stay. Hugepage limits are matched by
// page size; unified keys one by one.
func (r Resources) With(u *Resources) Resources {
	if u == nil {
		return r
	}
	out := r
	setU := func(dst *uint64, v uint64) {
		if v != 0 {
			*dst = v
		}
	}
	setI := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	setS := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setU(&out.CPUShares, u.CPUShares)
	setI(&out.CPUQuota, u.CPUQuota)
	setU(&out.CPUPeriod, u.CPUPeriod)
	setS(&out.CPUSetCPUs, u.CPUSetCPUs)
	setS(&out.CPUSetMems, u.CPUSetMems)
	setI(&out.MemoryLimit, u.MemoryLimit)
	setI(&out.MemorySwapLimit, u.MemorySwapLimit)
	setI(&out.PidsLimit, u.PidsLimit)
	out.HugepageLimits = append([]HugepageLimit(nil), r.HugepageLimits...)
	for _, h := range u.HugepageLimits {
		i := slices.IndexFunc(out.HugepageLimits, func(o HugepageLimit) bool { return o.PageSize == h.PageSize })
		if i < 0 {
			out.HugepageLimits = append(out.HugepageLimits, h)
		} else {
			out.HugepageLimits[i] = h
		}
	}
	if u.Devices != nil {
		out.Devices = slices.Clone(u.Devices)
	}
	if len(r.Unified)+len(u.Unified) > 0 {
		out.Unified = maps.Clone(r.Unified)
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, u.Unified)
	}
	return out
}
