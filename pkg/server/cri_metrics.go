package server

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// CRI metrics (ListMetricDescriptors, ListPodSandboxMetrics) are the
// cAdvisor container_* metrics the kubelet would otherwise scrape from
// cAdvisor, read from the same sources: each container's cgroup, its
// processes' descriptors, its writable layer and its file system, and the
// pod's network namespace. Every series is labelled with the container's
// (or pod's) ID, name and image; the kubelet passes series on as they
// are, so without the pod, namespace and container labels cAdvisor's have
// a series cannot yet be told apart by pod (the node e2e ContainerMetrics
// spec looks for them). What no source here can give is not reported
// (per-device block I/O: the descriptors exist, the values are absent when
// the kernel accounts none; hugetlb, PSI, ulimits: not described).

var baseLabels = []string{"id", "name", "image"}

type criMetric struct {
	name, help string
	labels     []string // after baseLabels
	typ        runtime.MetricType
}

const (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

var criMetrics = []criMetric{
	{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed, in seconds.", []string{"cpu"}, counter},
	{"container_cpu_user_seconds_total", "Cumulative user CPU time consumed, in seconds.", nil, counter},
	{"container_cpu_system_seconds_total", "Cumulative system CPU time consumed, in seconds.", nil, counter},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", nil, counter},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", nil, counter},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled, in seconds.", nil, counter},
	{"container_memory_cache", "Number of bytes of page cache memory.", nil, gauge},
	{"container_memory_rss", "Size of RSS (anonymous memory) in bytes.", nil, gauge},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", nil, gauge},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", nil, gauge},
	{"container_memory_swap", "Container swap usage in bytes.", nil, gauge},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", nil, gauge},
	{"container_memory_working_set_bytes", "Current working set in bytes.", nil, gauge},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", nil, gauge},
	{"container_memory_failcnt", "Number of memory usage hits limits.", nil, counter},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", []string{"failure_type", "scope"}, counter},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", nil, counter},
	{"container_processes", "Number of processes running inside the container.", nil, gauge},
	{"container_threads", "Number of threads running inside the container.", nil, gauge},
	{"container_threads_max", "Maximum number of threads allowed inside the container, 0 when unlimited.", nil, gauge},
	{"container_file_descriptors", "Number of open file descriptors for the container.", nil, gauge},
	{"container_sockets", "Number of open sockets for the container.", nil, gauge},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", []string{"device"}, gauge},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", []string{"device"}, gauge},
	{"container_fs_inodes_total", "Number of Inodes.", []string{"device"}, gauge},
	{"container_fs_inodes_free", "Number of available Inodes.", []string{"device"}, gauge},
	{"container_fs_reads_total", "Cumulative count of reads completed.", []string{"device"}, counter},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", []string{"device"}, counter},
	{"container_fs_writes_total", "Cumulative count of writes completed.", []string{"device"}, counter},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", []string{"device"}, counter},
	{"container_blkio_device_usage_total", "Blkio device bytes usage.", []string{"device", "major", "minor", "operation"}, counter},
	{"container_spec_cpu_period", "CPU period of the container, in microseconds.", nil, gauge},
	{"container_spec_cpu_shares", "CPU share of the container.", nil, gauge},
	{"container_spec_memory_limit_bytes", "Memory limit for the container, 0 when unlimited.", nil, gauge},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container, 0 when unlimited.", nil, gauge},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", nil, gauge},
	{"container_last_seen", "Last time a container was seen by the exporter.", nil, gauge},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", []string{"interface"}, counter},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", []string{"interface"}, counter},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", []string{"interface"}, counter},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", []string{"interface"}, counter},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", []string{"interface"}, counter},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", []string{"interface"}, counter},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", []string{"interface"}, counter},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", []string{"interface"}, counter},
}

// ListMetricDescriptors describes every metric ListPodSandboxMetrics
// reports.
func (s *Server) ListMetricDescriptors(ctx context.Context, req *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	out := make([]*runtime.MetricDescriptor, len(criMetrics))
	for i, m := range criMetrics {
		out[i] = &runtime.MetricDescriptor{Name: m.name, Help: m.help, LabelKeys: append(append([]string{}, baseLabels...), m.labels...)}
	}
	return &runtime.ListMetricDescriptorsResponse{Descriptors: out}, nil
}

// ListPodSandboxMetrics reports each ready pod's metrics and its
// containers'.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, req *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	out := []*runtime.PodSandboxMetrics{}
	// Every writable layer is on the one file system: asked once a call.
	var fs *unix.Statfs_t
	if st := new(unix.Statfs_t); unix.Statfs(s.layout.ContainersDir(), st) == nil {
		fs = st
	}
	for _, sb := range s.sandboxes.List() {
		if sb.State != sandbox.Ready {
			continue
		}
		pm := &runtime.PodSandboxMetrics{PodSandboxId: sb.ID, Metrics: s.networkMetrics(sb)}
		for _, c := range s.containers.ForSandbox(sb.ID) {
			if c.State != container.Running {
				continue
			}
			pm.ContainerMetrics = append(pm.ContainerMetrics, &runtime.ContainerMetrics{ContainerId: c.ID, Metrics: s.containerMetrics(ctx, c, fs)})
		}
		out = append(out, pm)
	}
	return &runtime.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

// metricSet builds one series after another with shared base labels.
type metricSet struct {
	base []string
	at   int64
	out  []*runtime.Metric
}

func (ms *metricSet) add(name string, typ runtime.MetricType, v float64, labels ...string) {
	ms.out = append(ms.out, &runtime.Metric{Name: name, Timestamp: ms.at, MetricType: typ,
		LabelValues: append(append([]string{}, ms.base...), labels...), Value: &runtime.UInt64Value{Value: uint64(v)}})
}

// containerMetrics reads one container's series; fs is the layers' file
// system (nil when it could not be read).
func (s *Server) containerMetrics(ctx context.Context, c *container.Container, fs *unix.Statfs_t) []*runtime.Metric {
	ms := &metricSet{base: []string{c.ID, c.Name, c.Image}, at: time.Now().UnixNano()}
	m, err := s.cgroups.Manager(c.Cgroup)
	if err != nil {
		return nil
	}
	st, err := m.DetailedStats()
	if err != nil {
		return nil
	}
	secs := func(ns uint64) float64 { return float64(ns) / 1e9 }
	cpu := st.CPU
	ms.add("container_cpu_usage_seconds_total", counter, secs(cpu.UsageNanos), "total")
	ms.add("container_cpu_user_seconds_total", counter, secs(cpu.UserNanos))
	ms.add("container_cpu_system_seconds_total", counter, secs(cpu.SystemNanos))
	ms.add("container_cpu_cfs_periods_total", counter, float64(cpu.Periods))
	ms.add("container_cpu_cfs_throttled_periods_total", counter, float64(cpu.Throttled))
	ms.add("container_cpu_cfs_throttled_seconds_total", counter, secs(cpu.ThrottledNanos))
	mem := st.Memory
	for name, v := range map[string]uint64{
		"container_memory_cache": mem.Cache, "container_memory_rss": mem.RSS, "container_memory_kernel_usage": mem.Kernel,
		"container_memory_mapped_file": mem.MappedFile, "container_memory_swap": mem.Swap,
		"container_memory_usage_bytes": mem.Usage, "container_memory_working_set_bytes": mem.WorkingSet,
		"container_memory_max_usage_bytes": mem.MaxUsage,
	} {
		ms.add(name, gauge, float64(v))
	}
	ms.add("container_memory_failcnt", counter, float64(mem.Failcnt))
	ms.add("container_memory_failures_total", counter, float64(mem.PageFaults-min(mem.MajorFaults, mem.PageFaults)), "pgfault", "container")
	ms.add("container_memory_failures_total", counter, float64(mem.MajorFaults), "pgmajfault", "container")
	if n, err := m.OOMKills(); err == nil {
		ms.add("container_oom_events_total", counter, float64(n))
	}
	ms.add("container_processes", gauge, float64(st.Pids.Current))
	ms.add("container_threads_max", gauge, float64(unlimitedAsZero(st.Pids.Limit)))
	if pids, err := m.Pids(); err == nil {
		threads, fds, sockets := processCounts(pids)
		ms.add("container_threads", gauge, float64(threads))
		ms.add("container_file_descriptors", gauge, float64(fds))
		ms.add("container_sockets", gauge, float64(sockets))
	}
	dev := s.layout.ContainersDir()
	if u, err := s.usage.Get(ctx, filepath.Join(c.Layer, "upper")); err == nil {
		ms.add("container_fs_usage_bytes", gauge, float64(u.Bytes), dev)
	}
	if fs != nil {
		ms.add("container_fs_limit_bytes", gauge, float64(fs.Blocks*uint64(fs.Bsize)), dev)
		ms.add("container_fs_inodes_total", gauge, float64(fs.Files), dev)
		ms.add("container_fs_inodes_free", gauge, float64(fs.Ffree), dev)
	}
	ms.add("container_spec_cpu_period", gauge, float64(st.Limits.CPUPeriod))
	ms.add("container_spec_cpu_shares", gauge, float64(st.Limits.CPUShares))
	ms.add("container_spec_memory_limit_bytes", gauge, float64(unlimitedAsZero(mem.Limit)))
	ms.add("container_spec_memory_swap_limit_bytes", gauge, float64(unlimitedAsZero(st.Limits.SwapLimit)))
	ms.add("container_start_time_seconds", gauge, float64(c.StartedAt.Unix()))
	ms.add("container_last_seen", gauge, float64(time.Now().Unix()))
	return ms.out
}

func unlimitedAsZero(v uint64) uint64 {
	if v == ^uint64(0) {
		return 0
	}
	return v
}

// processCounts counts the threads, open descriptors and sockets of
// processes; one that ends while counted is skipped.
func processCounts(pids []int) (threads, fds, sockets int) {
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		if tasks, err := os.ReadDir(filepath.Join(dir, "task")); err == nil {
			threads += len(tasks)
		}
		entries, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		fds += len(entries)
		for _, e := range entries {
			if l, err := os.Readlink(filepath.Join(dir, "fd", e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				sockets++
			}
		}
	}
	return threads, fds, sockets
}

// networkMetrics are the pod's interfaces' counters.
func (s *Server) networkMetrics(sb *sandbox.Sandbox) []*runtime.Metric {
	ifaces, err := sandbox.Interfaces(sb)
	if err != nil || len(ifaces) == 0 {
		return nil
	}
	ms := &metricSet{base: []string{sb.ID, sb.Spec.Name, ""}, at: time.Now().UnixNano()}
	for _, i := range ifaces {
		// Receive: bytes packets errs drop ...; transmit from field 8.
		for k, m := range []string{"receive_bytes", "receive_packets", "receive_errors", "receive_packets_dropped"} {
			ms.add("container_network_"+m+"_total", counter, float64(i.Counters[k]), i.Name)
		}
		for k, m := range []string{"transmit_bytes", "transmit_packets", "transmit_errors", "transmit_packets_dropped"} {
			ms.add("container_network_"+m+"_total", counter, float64(i.Counters[8+k]), i.Name)
		}
	}
	return ms.out
}
