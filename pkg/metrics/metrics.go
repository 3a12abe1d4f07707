// Package metrics holds crid's own Prometheus metrics: what operators
// alert on (OOM kills, CPU throttling, RPC errors and latency, slow pod
// starts, pulls) beside the Go runtime's. Names follow the ecosystem's
// rules: a crid_ prefix, base units (_seconds, _bytes), _total on
// counters. Per-container series carry namespace, pod and container
// labels and are dropped when the container is removed, so cardinality
// follows the containers the node has; every other series has bounded
// labels (method and code, operation, reason, state).
//
// A nil *Metrics records nothing: packages take one without caring
// whether metrics are on.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crid-dev/crid/pkg/version"
)

// Metrics is crid's set of collectors, registered on one registry.
type Metrics struct {
	rpcs       *prometheus.CounterVec
	rpcSeconds *prometheus.HistogramVec

	exits            *prometheus.CounterVec
	oomKills         *prometheus.CounterVec
	throttledPeriods *prometheus.CounterVec
	throttledSeconds *prometheus.CounterVec
	throttledShare   *prometheus.GaugeVec

	cniSeconds *prometheus.HistogramVec
	cniErrors  *prometheus.CounterVec

	pulls       *prometheus.CounterVec
	pullBytes   prometheus.Counter
	pullSeconds prometheus.Histogram
	pullLayers  *prometheus.CounterVec

	monitorStarts prometheus.Counter
	monitorsLost  prometheus.Counter
	streams       *prometheus.CounterVec
	streamsOpen   *prometheus.GaugeVec

	nriCalls   *prometheus.CounterVec
	nriSeconds *prometheus.HistogramVec

	// held counts the containers behind each per-container series: the
	// kubelet's restarts of a container share its labels, and the series
	// go only when the last of them is removed, so a counter keeps
	// counting across restarts instead of starting over.
	mu   sync.Mutex
	held map[Container]int
}

// Latency buckets, in seconds: RPCs run from tens of microseconds (a
// status) to minutes (a pull); CNI and NRI calls from milliseconds.
var (
	rpcBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	opBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// New makes crid's collectors and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	ctr := []string{"namespace", "pod", "container"}
	m := &Metrics{held: map[Container]int{},
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_grpc_requests_total",
			Help: "CRI calls answered, by method and gRPC code."}, []string{"method", "code"}),
		rpcSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crid_grpc_request_duration_seconds",
			Help: "How long CRI calls took to answer, by method.", Buckets: rpcBuckets}, []string{"method"}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_container_exits_total",
			Help: "Containers that ended, by reason (Completed, Error, OOMKilled, StartError)."}, []string{"reason"}),
		oomKills: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_container_oom_kills_total",
			Help: "Containers OOM-killed; the container's status message says what filled its memory."}, ctr),
		throttledPeriods: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_container_cpu_throttled_periods_total",
			Help: "CFS periods in which the container used up its CPU quota and was throttled."}, ctr),
		throttledSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_container_cpu_throttled_seconds_total",
			Help: "Time the container's processes were held back by its CPU quota."}, ctr),
		throttledShare: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crid_container_cpu_throttled_ratio",
			Help: "Share of the CFS periods of the last window in which the container was throttled (0 to 1)."}, ctr),
		cniSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crid_cni_operation_duration_seconds",
			Help: "How long the CNI plugin chain took, by network and operation (ADD, DEL, CHECK).", Buckets: opBuckets}, []string{"network", "operation"}),
		cniErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_cni_operation_errors_total",
			Help: "CNI operations that failed, by network and operation."}, []string{"network", "operation"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_image_pulls_total",
			Help: "Image pulls, by result: success, or why one failed (not_found, unauthorized, refused, timeout, canceled, no_space, error)."}, []string{"result"}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "crid_image_pull_bytes_total",
			Help: "Bytes fetched from registries by pulls."}),
		pullSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "crid_image_pull_duration_seconds",
			Help: "How long successful pulls took, fetch and unpack.", Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}}),
		pullLayers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_image_pull_layers_total",
			Help: "Layers of pulled images, by source: fetched, or reused (on the node already, or fetched by a concurrent pull)."}, []string{"source"}),
		monitorStarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "crid_monitor_starts_total",
			Help: "Pod monitors (crid-monitor) started."}),
		monitorsLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "crid_monitors_lost_total",
			Help: "Pod monitors found gone with their containers (killed, or a reboot): each such container's exit is unknown."}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_streaming_sessions_total",
			Help: "Exec, attach and port-forward sessions served."}, []string{"kind"}),
		streamsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crid_streaming_sessions",
			Help: "Exec, attach and port-forward sessions open now."}, []string{"kind"}),
		nriCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crid_nri_plugin_invocations_total",
			Help: "Calls of NRI plugins, by plugin, event and result."}, []string{"plugin", "event", "result"}),
		nriSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crid_nri_plugin_duration_seconds",
			Help: "How long NRI plugins took to answer, by plugin and event.", Buckets: opBuckets}, []string{"plugin", "event"}),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "crid_build_info",
		Help:        "Always 1; the labels say which crid is running.",
		ConstLabels: prometheus.Labels{"version": version.Version, "commit": version.Commit()},
	})
	info.Set(1)
	reg.MustRegister(info, m.rpcs, m.rpcSeconds, m.exits, m.oomKills, m.throttledPeriods, m.throttledSeconds, m.throttledShare,
		m.cniSeconds, m.cniErrors, m.pulls, m.pullBytes, m.pullSeconds, m.pullLayers, m.monitorStarts, m.monitorsLost,
		m.streams, m.streamsOpen, m.nriCalls, m.nriSeconds)
	return m
}

// Container names a container's series as the kubelet names it.
type Container struct{ Namespace, Pod, Name string }

func (c Container) labels() prometheus.Labels {
	return prometheus.Labels{"namespace": c.Namespace, "pod": c.Pod, "container": c.Name}
}

// RPC records a CRI call's answer.
func (m *Metrics) RPC(method, code string, took time.Duration) {
	if m == nil {
		return
	}
	m.rpcs.WithLabelValues(method, code).Inc()
	m.rpcSeconds.WithLabelValues(method).Observe(took.Seconds())
}

// Exit records a container's end.
func (m *Metrics) Exit(c Container, reason string) {
	if m == nil {
		return
	}
	m.exits.WithLabelValues(reason).Inc()
	if reason == "OOMKilled" {
		m.oomKills.With(c.labels()).Inc()
	}
}

// Throttled records a window of a container's CPU accounting: periods
// throttled and seconds held back since the last window, and the share
// of the window's periods throttled.
func (m *Metrics) Throttled(c Container, periods uint64, held time.Duration, share float64) {
	if m == nil {
		return
	}
	m.throttledPeriods.With(c.labels()).Add(float64(periods))
	m.throttledSeconds.With(c.labels()).Add(held.Seconds())
	m.throttledShare.With(c.labels()).Set(share)
}

// Track notes a container made or found at start-up, and starts its OOM
// kill counter at zero: Prometheus's increase() sees a kill only as a
// change of a series it saw before, so a series born at 1 would hide the
// first kill from an alert.
func (m *Metrics) Track(c Container) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held[c]++
	m.oomKills.With(c.labels()).Add(0)
}

// Forget drops a removed container's series once no other container with
// its labels (an earlier or later restart of it) is left.
func (m *Metrics) Forget(c Container) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[c]--; m.held[c] > 0 {
		return
	}
	delete(m.held, c)
	for _, v := range []*prometheus.CounterVec{m.oomKills, m.throttledPeriods, m.throttledSeconds} {
		v.Delete(c.labels())
	}
	m.throttledShare.Delete(c.labels())
}

// CNI records one operation of the plugin chain.
func (m *Metrics) CNI(network, op string, took time.Duration, err error) {
	if m == nil {
		return
	}
	m.cniSeconds.WithLabelValues(network, op).Observe(took.Seconds())
	if err != nil {
		m.cniErrors.WithLabelValues(network, op).Inc()
	}
}

// Pull records an image pull: result is "success" or why it failed.
func (m *Metrics) Pull(result string, bytes int64, took time.Duration) {
	if m == nil {
		return
	}
	m.pulls.WithLabelValues(result).Inc()
	m.pullBytes.Add(float64(bytes))
	if result == "success" {
		m.pullSeconds.Observe(took.Seconds())
	}
}

// PullLayers records the layers of a successful pull.
func (m *Metrics) PullLayers(fetched, reused int) {
	if m == nil {
		return
	}
	m.pullLayers.WithLabelValues("fetched").Add(float64(fetched))
	m.pullLayers.WithLabelValues("reused").Add(float64(reused))
}

// MonitorStarted and MonitorLost count pod monitors.
func (m *Metrics) MonitorStarted() {
	if m != nil {
		m.monitorStarts.Inc()
	}
}

func (m *Metrics) MonitorLost() {
	if m != nil {
		m.monitorsLost.Inc()
	}
}

// Stream records a streaming session opening; the returned func closes it.
func (m *Metrics) Stream(kind string) (done func()) {
	if m == nil {
		return func() {}
	}
	m.streams.WithLabelValues(kind).Inc()
	g := m.streamsOpen.WithLabelValues(kind)
	g.Inc()
	return g.Dec
}

// NRICall records a call of an NRI plugin.
func (m *Metrics) NRICall(plugin, event string, err error) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	m.nriCalls.WithLabelValues(plugin, event, result).Inc()
}

// NRILatency records how long an NRI plugin took.
func (m *Metrics) NRILatency(plugin, event string, took time.Duration) {
	if m != nil {
		m.nriSeconds.WithLabelValues(plugin, event).Observe(took.Seconds())
	}
}

// states reports how many pods and containers the node has in each state,
// counted when scraped.
type states struct {
	pods, containers *prometheus.Desc
	count            func() (pods, containers map[string]int)
}

// RegisterStates adds crid_pods and crid_containers, by state, counted
// by count at each scrape.
func RegisterStates(reg prometheus.Registerer, count func() (pods, containers map[string]int)) {
	reg.MustRegister(&states{
		pods:       prometheus.NewDesc("crid_pods", "Pod sandboxes on the node, by state (ready, notready).", []string{"state"}, nil),
		containers: prometheus.NewDesc("crid_containers", "Containers on the node, by state (created, running, exited).", []string{"state"}, nil),
		count:      count,
	})
}

func (s *states) Describe(ch chan<- *prometheus.Desc) { ch <- s.pods; ch <- s.containers }

func (s *states) Collect(ch chan<- prometheus.Metric) {
	pods, containers := s.count()
	for state, n := range pods {
		ch <- prometheus.MustNewConstMetric(s.pods, prometheus.GaugeValue, float64(n), state)
	}
	for state, n := range containers {
		ch <- prometheus.MustNewConstMetric(s.containers, prometheus.GaugeValue, float64(n), state)
	}
}
