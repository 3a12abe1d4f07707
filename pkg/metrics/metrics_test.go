package metrics

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// scrape serves reg as the metrics endpoint does and parses the answer
// with Prometheus's own text parser.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	// Legacy names: what every Prometheus, old or new, accepts.
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("the endpoint does not parse: %v\n%s", err, rec.Body.String())
	}
	out := map[string]string{}
	for name, f := range families {
		out[name] = f.GetType().String()
	}
	return out
}

// recordAll gives every metric a series, so a scrape shows them all.
func recordAll(reg *prometheus.Registry) (*Metrics, Container) {
	m := New(reg)
	c := Container{Namespace: "shop", Pod: "web-1", Name: "app"}
	m.RPC("/runtime.v1.RuntimeService/RunPodSandbox", "OK", 40*time.Millisecond)
	m.Exit(c, "OOMKilled")
	m.Throttled(c, 70, 2*time.Second, 0.7)
	m.CNI("crid", "ADD", 30*time.Millisecond, errors.New("boom"))
	m.Pull("success", 1<<20, time.Second)
	m.PullLayers(2, 3)
	m.MonitorStarted()
	m.MonitorLost()
	m.Stream("exec")()
	m.NRICall("10-policy", "CreateContainer", nil)
	m.NRILatency("10-policy", "CreateContainer", time.Millisecond)
	RegisterStates(reg, func() (map[string]int, map[string]int) {
		return map[string]int{"ready": 2}, map[string]int{"running": 3, "exited": 1}
	})
	return m, c
}

func TestEndpointParsesAndNamesFollowTheRules(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, c := recordAll(reg)
	got := scrape(t, reg)
	for _, name := range []string{
		"crid_grpc_requests_total", "crid_grpc_request_duration_seconds", "crid_container_exits_total",
		"crid_container_oom_kills_total", "crid_container_cpu_throttled_periods_total", "crid_container_cpu_throttled_seconds_total",
		"crid_container_cpu_throttled_ratio", "crid_cni_operation_duration_seconds", "crid_cni_operation_errors_total",
		"crid_image_pulls_total", "crid_image_pull_bytes_total", "crid_image_pull_duration_seconds", "crid_image_pull_layers_total", "crid_monitor_starts_total",
		"crid_monitors_lost_total", "crid_streaming_sessions_total", "crid_streaming_sessions", "crid_nri_plugin_invocations_total",
		"crid_nri_plugin_duration_seconds", "crid_pods", "crid_containers",
	} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s is not served", name)
		}
	}
	for name, typ := range got {
		if !strings.HasPrefix(name, "crid_") {
			t.Errorf("%s has no crid_ prefix", name)
		}
		if typ == "COUNTER" && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if strings.Contains(name, "duration") && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s is a duration not in seconds", name)
		}
	}

	// A removed container's series go; the others stay.
	m.Forget(c)
	got = scrape(t, reg)
	for _, name := range []string{"crid_container_oom_kills_total", "crid_container_cpu_throttled_ratio", "crid_container_cpu_throttled_periods_total"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s is still served after the container went", name)
		}
	}
	if _, ok := got["crid_container_exits_total"]; !ok {
		t.Error("the exits by reason went with one container")
	}
}

// oomKills is the OOM kill counter of c, and whether it is served.
func oomKills(t *testing.T, reg *prometheus.Registry, c Container) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "crid_container_oom_kills_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["namespace"] == c.Namespace && l["pod"] == c.Pod && l["container"] == c.Name {
				return s.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestSeriesOutliveARestart: the kubelet restarts a container as a new
// one with the same labels and removes the dead one later; the series
// goes with the last of them, so the kill counter counts every attempt's
// kill, and it starts at zero so that the first kill is an increase.
func TestSeriesOutliveARestart(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	c := Container{Namespace: "shop", Pod: "web-1", Name: "app"}
	want := func(step string, n float64, served bool) {
		t.Helper()
		if got, ok := oomKills(t, reg, c); got != n || ok != served {
			t.Errorf("%s: OOM kills %v (served %v), want %v (served %v)", step, got, ok, n, served)
		}
	}
	m.Track(c)
	want("created", 0, true)
	m.Exit(c, "OOMKilled")
	m.Track(c) // the kubelet's restart
	m.Forget(c)
	want("the first attempt removed", 1, true)
	m.Exit(c, "OOMKilled")
	want("the second kill", 2, true)
	m.Forget(c)
	want("the last attempt removed", 0, false)
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.RPC("x", "OK", time.Second)
	m.Exit(Container{}, "Error")
	m.Throttled(Container{}, 1, time.Second, 1)
	m.Track(Container{})
	m.Forget(Container{})
	m.CNI("n", "ADD", time.Second, nil)
	m.Pull("success", 1, time.Second)
	m.PullLayers(1, 1)
	m.MonitorStarted()
	m.MonitorLost()
	m.Stream("exec")()
	m.NRICall("p", "e", nil)
	m.NRILatency("p", "e", time.Second)
}

// TestDashboardAndAlertsNameServedMetrics: every crid_ metric the example
// Grafana dashboard and Prometheus rules query is one crid serves (a
// histogram by its _bucket, _sum or _count series), so a rename cannot
// leave them querying nothing.
func TestDashboardAndAlertsNameServedMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	recordAll(reg)
	served := scrape(t, reg)
	var exprs []string
	rules, err := os.ReadFile("../../deploy/prometheus/crid-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(rules, &doc); err != nil {
		t.Fatal(err)
	}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("a rule without alert or expr: %+v", r)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	dash, err := os.ReadFile("../../deploy/grafana/crid-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Query any }
		}
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}
	names := regexp.MustCompile(`\bcrid_[a-z_]+`)
	seen := 0
	for _, e := range exprs {
		for _, n := range names.FindAllString(e, -1) {
			seen++
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && served[b] == "HISTOGRAM" {
					base = b
				}
			}
			if _, ok := served[base]; !ok {
				t.Errorf("%s in %q is not a metric crid serves", n, e)
			}
		}
	}
	if seen < 20 {
		t.Errorf("only %d metric names in the dashboard and rules", seen)
	}
}
