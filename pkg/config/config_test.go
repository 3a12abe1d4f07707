package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "crid.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestMissingDefaultFileGivesDefaults(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "absent.toml"), false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v, want defaults", cfg)
	}
}

func TestMissingChosenFileIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.toml")
	_, err := Load(p, true)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("want an error naming %s, got %v", p, err)
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	p := writeFile(t, `
root = "/srv/crid"
log_level = "debug"
[runtime]
default_handler = "fast"
[network]
cni_plugin_dirs = ["/usr/libexec/cni"]
[image]
pinned_images = ["registry.k8s.io/pause:3.10"]
`)
	cfg, err := Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Root = "/srv/crid"
	want.LogLevel = "debug"
	want.Runtime.DefaultHandler = "fast"
	want.Network.CNIPluginDirs = []string{"/usr/libexec/cni"}
	want.Image.PinnedImages = []string{"registry.k8s.io/pause:3.10"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestBadInputNamesFileKeyAndReason(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // every string must appear in the error
	}{
		{"unknown top-level key", `rooot = "/x"`, []string{"unknown key", "rooot"}},
		{"unknown key in a table", "[runtime]\ncgroup_drivers = \"cgroupfs\"", []string{"unknown key", "runtime.cgroup_drivers"}},
		{"unknown table", "[network.extra]\na = 1", []string{"unknown key", "network.extra"}},
		{"wrong type", "[runtime]\ncgroup_driver = 1", []string{"runtime.cgroup_driver"}},
		{"wrong type for a list", `[network]
cni_plugin_dirs = "/opt/cni/bin"`, []string{"network.cni_plugin_dirs"}},
		{"syntax error", "root = ", []string{"line 1"}},
		{"relative root", `root = "var/lib/crid"`, []string{"root:", "not an absolute path"}},
		{"unclean runroot", `runroot = "/run//crid/"`, []string{"runroot:", "not a clean path"}},
		{"empty listen", `listen = ""`, []string{"listen:", "must not be empty"}},
		{"socket path too long", `listen = "/` + strings.Repeat("s", 120) + `"`, []string{"listen:", "unix socket path is at most"}},
		{"root equals runroot", "root = \"/x\"\nrunroot = \"/x\"", []string{"runroot:", "must differ from root"}},
		{"bad log level", `log_level = "loud"`, []string{"log_level:", "loud"}},
		{"verbosity out of range", `log_level = "11"`, []string{"log_level:"}},
		{"bad cgroup driver", "[runtime]\ncgroup_driver = \"cgroupv3\"", []string{"runtime.cgroup_driver:", "cgroupv3", "cgroupfs"}},
		{"systemd cgroup driver", "[runtime]\ncgroup_driver = \"systemd\"", []string{"runtime.cgroup_driver:", "systemd cgroup driver is not implemented", "cgroupDriver: cgroupfs"}},
		{"bad pids limit", "[runtime]\npids_limit = -2", []string{"runtime.pids_limit:"}},
		{"bad handler", "[runtime]\ndefault_handler = \"Runc_2\"", []string{"runtime.default_handler:", "DNS label"}},
		{"bad extra handler", "[runtime]\nhandlers = [\"ok\", \"Not OK\"]", []string{"runtime.handlers[1]:", "DNS label"}},
		{"extra handler twice", "[runtime]\nhandlers = [\"crid\"]", []string{"runtime.handlers[0]:", "named twice"}},
		{"relative registries.conf", "[image]\nregistries_conf = \"registries.conf\"", []string{"image.registries_conf:"}},
		{"bad pinned image", "[image]\npinned_images = [\"ok:1\", \"UPPER/Case::x\"]", []string{"image.pinned_images[1]:", "UPPER/Case::x"}},
		{"bad pull timeout", "[image]\npull_progress_timeout = \"soon\"", []string{"image.pull_progress_timeout:", "soon"}},
		{"zero pull timeout", "[image]\npull_progress_timeout = \"0s\"", []string{"image.pull_progress_timeout:"}},
		{"no plugin dirs", "[network]\ncni_plugin_dirs = []", []string{"network.cni_plugin_dirs:", "at least one"}},
		{"relative plugin dir", "[network]\ncni_plugin_dirs = [\"/ok\", \"bin\"]", []string{"network.cni_plugin_dirs[1]:"}},
		{"relative conf dir", "[network]\ncni_config_dir = \"net.d\"", []string{"network.cni_config_dir:"}},
		{"streaming without port", "[streaming]\naddress = \"127.0.0.1\"", []string{"streaming.address:", "host:port"}},
		{"streaming port too big", "[streaming]\naddress = \"127.0.0.1:70000\"", []string{"streaming.address:", "port"}},
		{"metrics host name", "[metrics]\naddress = \"example.com:9539\"", []string{"metrics.address:", "IP address"}},
		{"throttle window too short", "[metrics]\nthrottle_window = \"10ms\"", []string{"metrics.throttle_window:", "10ms"}},
		{"throttle share past 1", "[metrics]\nthrottle_log_share = 1.5", []string{"metrics.throttle_log_share:", "1.5"}},
		{"pprof off loopback", "[metrics]\naddress = \"0.0.0.0:9539\"\n[debug]\npprof = true", []string{"debug.pprof:", "loopback", "0.0.0.0:9539"}},
		{"pprof without metrics", "[metrics]\naddress = \"\"\n[debug]\npprof = true", []string{"debug.pprof:", "loopback"}},
		{"relative nri socket", "[nri]\nsocket_path = \"nri.sock\"", []string{"nri.socket_path:", "absolute"}},
		{"nri socket too long", "[nri]\nsocket_path = \"/" + strings.Repeat("s", 120) + "\"", []string{"nri.socket_path:", "at most"}},
		{"bad nri request timeout", "[nri]\nplugin_request_timeout = \"2\"", []string{"nri.plugin_request_timeout:", "duration"}},
		{"zero nri registration timeout", "[nri]\nplugin_registration_timeout = \"0s\"", []string{"nri.plugin_registration_timeout:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, tt.toml)
			_, err := Load(p, true)
			if err == nil {
				t.Fatalf("accepted %q", tt.toml)
			}
			msg := err.Error()
			for _, w := range append([]string{p}, tt.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestDisabledNRIIsNotChecked(t *testing.T) {
	// An operator turning NRI off need not fix paths they no longer use.
	p := writeFile(t, "[nri]\nenable = false\nsocket_path = \"\"\nplugin_request_timeout = \"\"")
	cfg, err := Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NRI.Enable {
		t.Error("nri.enable = false was not honoured")
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	p := writeFile(t, "log_level = \"loud\"\n[runtime]\ncgroup_driver = \"x\"")
	_, err := Load(p, true)
	if err == nil || !strings.Contains(err.Error(), "log_level") || !strings.Contains(err.Error(), "runtime.cgroup_driver") {
		t.Fatalf("want both keys named, got %v", err)
	}
}

func TestMetricsMayBeTurnedOff(t *testing.T) {
	cfg, err := Load(writeFile(t, "[metrics]\naddress = \"\""), true)
	if err != nil || cfg.Metrics.Address != "" {
		t.Fatalf("got %q, %v", cfg.Metrics.Address, err)
	}
}

func TestPprofOnLoopbackIsAccepted(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:9539", "[::1]:0", "localhost:9539"} {
		cfg, err := Load(writeFile(t, "[metrics]\naddress = \""+addr+"\"\n[debug]\npprof = true"), true)
		if err != nil || !cfg.Debug.Pprof {
			t.Errorf("%s: got pprof %v, %v", addr, cfg.Debug.Pprof, err)
		}
	}
}

func TestWrittenConfigLoadsBackUnchanged(t *testing.T) {
	changed := Default()
	changed.Root = "/srv/crid \"quoted\""
	changed.Image.PinnedImages = []string{"registry.k8s.io/pause:3.10", "busybox"}
	changed.Metrics.Address = ""
	for name, cfg := range map[string]Config{"defaults": Default(), "changed": changed} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := cfg.WriteTOML(&b); err != nil {
				t.Fatal(err)
			}
			back := Default()
			if err := back.decode(b.String()); err != nil {
				t.Fatalf("written config does not load back: %v\n%s", err, b.String())
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", back, cfg)
			}
		})
	}
}

func TestWrittenConfigDocumentsEveryKey(t *testing.T) {
	var b bytes.Buffer
	if err := Default().WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Tag.Get("doc") == "" {
				t.Errorf("%s%s has no doc tag", prefix, f.Tag.Get("toml"))
			}
			if f.Type.Kind() == reflect.Struct {
				walk(prefix+f.Tag.Get("toml")+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}

// deploy/crid.toml is the operators' reference; it must be what crid prints.
func TestDeployReferenceMatchesDefaults(t *testing.T) {
	ref, err := os.ReadFile("../../deploy/crid.toml")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Default().WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != string(ref) {
		t.Fatalf("deploy/crid.toml differs from the defaults; regenerate it with `crid config --defaults > deploy/crid.toml`")
	}
}

func TestParseLogLevel(t *testing.T) {
	for level, want := range map[string]int{"info": 0, "DEBUG": 4, "trace": 6, "0": 0, "10": 10} {
		got, err := ParseLogLevel(level)
		if err != nil || got != want {
			t.Errorf("ParseLogLevel(%q) = %d, %v; want %d", level, got, err, want)
		}
	}
	for _, level := range []string{"", "-1", "11", "warn"} {
		if _, err := ParseLogLevel(level); err == nil {
			t.Errorf("ParseLogLevel(%q) accepted", level)
		}
	}
}
