package container

import (
	"fmt"
	"math"
	"strings"

	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// OOMMessage explains an OOM kill in a line, as operators read it:
//
//	OOMKilled: limit 64Mi; anon 61.8Mi, page cache 1.9Mi (active 1.2Mi), kernel 307.2Ki; process sh (pid 12) killed
//
// The page cache is named because it is what surprises: it counts toward
// the limit, so a container can be killed while its processes' own
// memory, and the host's `free`, look fine. A kill by a parent's limit
// (a pod's) says whose, and whose memory the figures are; a breakdown
// read after the kill says so.
func OOMMessage(r *monitor.OOMReport, cgroup string) string {
	var b strings.Builder
	b.WriteString("OOMKilled: ")
	byParent := r.Victim != nil && r.Victim.LimitCgroup != "" && r.Victim.LimitCgroup != cgroup
	switch {
	case byParent:
		limit := ""
		if r.Cgroup == r.Victim.LimitCgroup && r.Limit != 0 && r.Limit != math.MaxUint64 {
			limit = Quantity(r.Limit) + ", "
		}
		fmt.Fprintf(&b, "the memory limit of %s (%sthe pod's, not the container's) ran out", r.Victim.LimitCgroup, limit)
		if r.Cgroup == r.Victim.LimitCgroup {
			b.WriteString("; the pod held ")
		} else {
			b.WriteString("; the container held ")
		}
	case r.Limit == 0 || r.Limit == math.MaxUint64:
		b.WriteString("no limit of its own; ")
	default:
		fmt.Fprintf(&b, "limit %s; ", Quantity(r.Limit))
	}
	fmt.Fprintf(&b, "anon %s, page cache %s (active %s", Quantity(r.Anon), Quantity(r.File), Quantity(r.ActiveFile))
	if r.Shmem > 0 {
		// tmpfs pages sit on the anon LRU: not active file, never reclaimed.
		fmt.Fprintf(&b, ", tmpfs %s", Quantity(r.Shmem))
	}
	fmt.Fprintf(&b, "), kernel %s", Quantity(r.Kernel))
	if !r.AtKill {
		b.WriteString(" (read at the exit, after the kill freed the victim's memory)")
	}
	if v := r.Victim; v != nil && v.Pid > 0 {
		fmt.Fprintf(&b, "; process %s (pid %d) killed", v.Comm, v.Pid)
	}
	return b.String()
}

// Quantity writes bytes as Kubernetes quantities do, with one decimal:
// 64Mi, 61.8Mi, 512Ki, 1.5Gi.
func Quantity(n uint64) string {
	units := []string{"", "Ki", "Mi", "Gi", "Ti"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + units[i]
}

// logOOM says, at warning, what filled a killed container's memory, with
// the pod and container as the kubelet names them.
func logOOM(log klog.Logger, c *Container) {
	r := c.OOM
	kv := []any{"level", "warning"}
	if ns, pod := c.Labels["io.kubernetes.pod.namespace"], c.Labels["io.kubernetes.pod.name"]; pod != "" {
		kv = append(kv, "podName", ns+"/"+pod)
	}
	kv = append(kv, "name", c.Name, "limit", r.Limit, "anon", r.Anon, "pageCache", r.File, "activeFile", r.ActiveFile,
		"inactiveFile", r.InactiveFile, "tmpfs", r.Shmem, "kernel", r.Kernel, "atKill", r.AtKill)
	if v := r.Victim; v != nil {
		kv = append(kv, "victim", v.Comm, "victimPid", v.Pid, "limitCgroup", v.LimitCgroup)
	}
	log.Info("Container OOM-killed", kv...)
}
