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
// read after the kill says so. ownLimit is the container's own limit in
// bytes (0 or less: none): the kubelet sets a pod's limit to the sum of
// its containers', so a one-container pod reaches the pod's limit first
// (the pod cgroup holds a little more: the infra process) and the
// container's is what its owner set and looks for.
func OOMMessage(r *monitor.OOMReport, cgroup string, ownLimit int64) string {
	var b strings.Builder
	b.WriteString("OOMKilled: ")
	byParent := r.Victim != nil && r.Victim.LimitCgroup != "" && r.Victim.LimitCgroup != cgroup
	figuresOfParent := byParent && r.Cgroup == r.Victim.LimitCgroup
	held := "; the container held "
	if figuresOfParent {
		held = "; the pod held "
	}
	parentLimit := ""
	if figuresOfParent && r.Limit != 0 && r.Limit != math.MaxUint64 {
		parentLimit = Quantity(r.Limit) + ", "
	}
	switch {
	case byParent && ownLimit > 0:
		fmt.Fprintf(&b, "limit %s, reached at the pod's limit (%s%s)%s", Quantity(uint64(ownLimit)), parentLimit, r.Victim.LimitCgroup, held)
	case byParent:
		fmt.Fprintf(&b, "the memory limit of %s (%sthe pod's, not the container's) ran out%s", r.Victim.LimitCgroup, parentLimit, held)
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
