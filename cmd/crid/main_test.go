package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/metrics"
)

// configOf runs `crid ARGS config` and loads what it printed back.
func configOf(t *testing.T, args ...string) config.Config {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(args, &out, &errOut); err != nil {
		t.Fatalf("crid %v: %v", args, err)
	}
	p := filepath.Join(t.TempDir(), "printed.toml")
	os.WriteFile(p, out.Bytes(), 0o644)
	cfg, err := config.Load(p, true)
	if err != nil {
		t.Fatalf("printed config does not load back: %v\n%s", err, out.String())
	}
	return cfg
}

func TestFlagsOverrideTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "crid.toml")
	os.WriteFile(file, []byte("root = \"/from/file\"\nlog_level = \"debug\"\n[network]\ncni_plugin_dirs = [\"/file/bin\"]\n"), 0o644)

	tests := []struct {
		name string
		args []string
		edit func(*config.Config)
	}{
		{"file alone", []string{"--config", file, "config"}, func(c *config.Config) {
			c.Root, c.LogLevel, c.Network.CNIPluginDirs = "/from/file", "debug", []string{"/file/bin"}
		}},
		{"flags before the command", []string{"--config", file, "--root", "/from/flag", "--runroot", "/rr", "config"}, func(c *config.Config) {
			c.Root, c.RunRoot, c.LogLevel, c.Network.CNIPluginDirs = "/from/flag", "/rr", "debug", []string{"/file/bin"}
		}},
		{"flags after the command", []string{"config", "--config", file, "--listen", "/s/crid.sock", "--log-level", "trace"}, func(c *config.Config) {
			c.Root, c.Listen, c.LogLevel, c.Network.CNIPluginDirs = "/from/file", "/s/crid.sock", "trace", []string{"/file/bin"}
		}},
		{"plugin dirs repeated and colon-separated", []string{"--config", file, "--cni-plugin-dir", "/a:/b", "--cni-plugin-dir", "/c", "config"}, func(c *config.Config) {
			c.Root, c.LogLevel, c.Network.CNIPluginDirs = "/from/file", "debug", []string{"/a", "/b", "/c"}
		}},
		{"every other flag", []string{"--config", file, "--registries-conf", "/r.conf", "--cni-config-dir", "/net", "config"}, func(c *config.Config) {
			c.Root, c.LogLevel, c.Network.CNIPluginDirs = "/from/file", "debug", []string{"/file/bin"}
			c.Image.RegistriesConf, c.Network.CNIConfigDir = "/r.conf", "/net"
		}},
		{"defaults ignore file and flags", []string{"config", "--defaults", "--config", file, "--root", "/x"}, func(*config.Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := config.Default()
			tt.edit(&want)
			if got := configOf(t, tt.args...); !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestCommandLineErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[runtime]\ncgroup_driver = \"v3\"\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown command", []string{"start"}, []string{`unknown command "start"`}},
		{"stray argument", []string{"config", "extra"}, []string{`unexpected argument "extra"`}},
		{"unknown flag", []string{"--rooot", "/x"}, []string{"rooot"}},
		{"defaults without config", []string{"--defaults", "version"}, []string{"--defaults goes with the config command"}},
		{"missing chosen file", []string{"--config", "/no/such/crid.toml", "config"}, []string{"/no/such/crid.toml"}},
		{"bad value in the file", []string{"--config", bad, "config"}, []string{bad, "runtime.cgroup_driver"}},
		{"bad value in a flag", []string{"--log-level", "loud", "config"}, []string{"flags", "log_level", "loud"}},
		{"relative root flag", []string{"--root", "relative", "config"}, []string{"flags", "root:", "not an absolute path"}},
		{"empty plugin dir flag", []string{"--cni-plugin-dir", ":", "config"}, []string{"network.cni_plugin_dirs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(tt.args, &out, &errOut)
			if err == nil {
				t.Fatalf("accepted %v", tt.args)
			}
			msg := err.Error() + errOut.String()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "crid 0.") || !strings.Contains(out.String(), "commit") {
		t.Fatalf("got %q", out.String())
	}
}

func TestMetricsServeProfilesOnlyWhenAsked(t *testing.T) {
	for _, pprofOn := range []bool{false, true} {
		errc := make(chan error, 1)
		reg := prometheus.NewRegistry()
		metrics.New(reg)
		srv, err := serveMetrics("127.0.0.1:0", reg, pprofOn, errc)
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + srv.Addr
		get := func(path string) (int, string) {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "crid_build_info") {
			t.Errorf("pprof=%v: /metrics: %d %.200s", pprofOn, code, body)
		}
		code, body := get("/debug/pprof/goroutine?debug=1")
		switch {
		case pprofOn && (code != 200 || !strings.Contains(body, "goroutine profile:")):
			t.Errorf("pprof on: goroutine profile: %d %.200s", code, body)
		case !pprofOn && code != http.StatusNotFound:
			t.Errorf("pprof off: goroutine profile answered %d", code)
		}
		srv.Close()
	}
}
