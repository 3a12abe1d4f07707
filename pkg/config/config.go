// Package config holds crid's configuration: the TOML file operators write,
// its defaults, the checks that refuse a bad value before anything starts,
// and the commented TOML that `crid config` prints back.
//
// Every key lives in one struct tree. A field's `toml` tag is its key and its
// `doc` tag is the comment printed above it, so deploy/crid.toml, `crid
// config` and the parser can never disagree about what a key is called.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-containerregistry/pkg/name"
)

// NRIConfig is the Node Resource Interface host: plugins connect to its
// socket (or are started from plugin_path) and hear of every pod and
// container change, in order.
type NRIConfig struct {
	Enable                    bool   `toml:"enable" json:"enable" doc:"Host NRI plugins. Off, no socket is opened and no plugin is started."`
	SocketPath                string `toml:"socket_path" json:"socket_path" doc:"Unix socket external NRI plugins connect to."`
	PluginPath                string `toml:"plugin_path" json:"plugin_path" doc:"Directory of plugins crid starts itself (files named NN-name, NN the plugin's order)."`
	PluginConfigPath          string `toml:"plugin_config_path" json:"plugin_config_path" doc:"Directory of configuration for the plugins crid starts (name.conf or NN-name.conf)."`
	PluginRegistrationTimeout string `toml:"plugin_registration_timeout" json:"plugin_registration_timeout" doc:"How long a plugin may take to register and synchronize before it is dropped (Go duration)."`
	PluginRequestTimeout      string `toml:"plugin_request_timeout" json:"plugin_request_timeout" doc:"How long a plugin may take to answer one event before it is dropped (Go duration)."`
	DisableConnections        bool   `toml:"disable_connections" json:"disable_connections" doc:"Refuse plugins connecting to the socket: only those crid starts itself run."`
}

// DefaultFile is where crid looks for its configuration when --config is not given.
const DefaultFile = "/etc/crid/crid.toml"

// Cgroup drivers crid knows. The kubelet's --cgroup-driver must match.
const (
	CgroupDriverCgroupfs = "cgroupfs"
	// CgroupDriverSystemd is refused: crid has no systemd driver. It is
	// named so the refusal can say what to use instead.
	CgroupDriverSystemd = "systemd"
)

// Config is the whole of crid's configuration.
type Config struct {
	Root     string `toml:"root" json:"root" doc:"Persistent state: metadata database, image layers, container upper dirs."`
	RunRoot  string `toml:"runroot" json:"runroot" doc:"Runtime state that a reboot may lose: pinned namespaces, per-container state, the lock of a running crid."`
	Listen   string `toml:"listen" json:"listen" doc:"Path of the CRI gRPC unix socket (mode 0660, owned by root). The kubelet's --container-runtime-endpoint is unix:// followed by this path."`
	LogLevel string `toml:"log_level" json:"log_level" doc:"How much crid logs: \"info\", \"debug\" (each request) or \"trace\" (each request with its payload), or a klog verbosity from 0 to 10."`

	Runtime   RuntimeConfig   `toml:"runtime" json:"runtime" doc:"How containers are run."`
	Image     ImageConfig     `toml:"image" json:"image" doc:"Where images come from and which are kept."`
	Network   NetworkConfig   `toml:"network" json:"network" doc:"Pod networking through CNI plugins."`
	Streaming StreamingConfig `toml:"streaming" json:"streaming" doc:"The exec/attach/port-forward server the kubelet redirects clients to."`
	Metrics   MetricsConfig   `toml:"metrics" json:"metrics" doc:"Prometheus metrics."`
	NRI       NRIConfig       `toml:"nri" json:"nri" doc:"Node Resource Interface: plugins that see, and may adjust, pods and containers as they change."`
	Debug     DebugConfig     `toml:"debug" json:"debug" doc:"Help for whoever debugs crid itself."`
}

// ServesHandler says whether a pod may name handler: "" (no RuntimeClass),
// the default handler, or one of runtime.handlers.
func (c RuntimeConfig) ServesHandler(handler string) bool {
	return handler == "" || handler == c.DefaultHandler || slices.Contains(c.Handlers, handler)
}

// HandlerNames are the handlers crid serves, the default first.
func (c RuntimeConfig) HandlerNames() []string {
	return append([]string{c.DefaultHandler}, c.Handlers...)
}

// RuntimeConfig is the [runtime] table.
type RuntimeConfig struct {
	CgroupDriver                     string   `toml:"cgroup_driver" json:"cgroup_driver" doc:"\"cgroupfs\", the only driver crid has; the kubelet's cgroupDriver must be cgroupfs too (kubeadm defaults to systemd: set it)."`
	PidsLimit                        int64    `toml:"pids_limit" json:"pids_limit" doc:"Most processes and threads a container may have, unless its pod says otherwise; -1 for no limit, 0 to leave the pod cgroup's."`
	DefaultHandler                   string   `toml:"default_handler" json:"default_handler" doc:"Runtime handler used when a pod names none (RuntimeClass handler). A DNS label."`
	Handlers                         []string `toml:"handlers" json:"handlers" doc:"More RuntimeClass handler names crid serves, each by the same executor with the same settings: for RuntimeClasses that set pod overhead or scheduling, or the test-handler the node e2e suite's RuntimeClass specs ask for. DNS labels."`
	TolerateMissingHugetlbController bool     `toml:"tolerate_missing_hugetlb_controller" json:"tolerate_missing_hugetlb_controller" doc:"Accept positive hugepage limits, unenforced, on a host without the hugetlb controller (limits of 0, which the kubelet sends for every page size a pod does not ask for, are always accepted there). Off, such a container fails with FailedPrecondition naming the controller."`
	ExecSyncOutputLimit              int      `toml:"exec_sync_output_limit" json:"exec_sync_output_limit" doc:"Bytes of each stream ExecSync keeps (probes, crictl exec -s); the rest is read and dropped, and the reply's stderr says so. The kubelet reads 10 KiB of a probe's output. At most 8323072, so both streams fit one 16 MiB reply."`
}

// ImageConfig is the [image] table.
type ImageConfig struct {
	RegistriesConf        string   `toml:"registries_conf" json:"registries_conf" doc:"containers-registries.conf(5) v2 file: registry remaps, mirrors, insecure and blocked registries. A missing file means no remaps."`
	PinnedImages          []string `toml:"pinned_images" json:"pinned_images" doc:"Images that image garbage collection never removes; ImageStatus reports them pinned."`
	PullProgressTimeout   string   `toml:"pull_progress_timeout" json:"pull_progress_timeout" doc:"A layer download that receives nothing for this long fails, instead of holding the pull forever (Go duration: 30s, 2m)."`
	ConnectTimeout        string   `toml:"connect_timeout" json:"connect_timeout" doc:"How long connecting to a registry may take (Go duration)."`
	TLSHandshakeTimeout   string   `toml:"tls_handshake_timeout" json:"tls_handshake_timeout" doc:"How long a registry's TLS handshake may take (Go duration)."`
	ResponseHeaderTimeout string   `toml:"response_header_timeout" json:"response_header_timeout" doc:"How long a registry may take to start answering a request once it is sent: one that accepts the connection and never answers fails the pull after this (Go duration)."`
}

// NetworkConfig is the [network] table.
type NetworkConfig struct {
	CNIConfigDir  string   `toml:"cni_config_dir" json:"cni_config_dir" doc:"Directory of CNI network configurations; the first in lexical order is the pod network."`
	CNIPluginDirs []string `toml:"cni_plugin_dirs" json:"cni_plugin_dirs" doc:"Directories searched, in order, for CNI plugin binaries."`
}

// StreamingConfig is the [streaming] table.
type StreamingConfig struct {
	Address string `toml:"address" json:"address" doc:"host:port of the streaming server. Keep it on loopback unless the API server must reach it; port 0 picks a free port."`
}

// MetricsConfig is the [metrics] table.
type MetricsConfig struct {
	Address          string  `toml:"address" json:"address" doc:"host:port serving Prometheus metrics on /metrics; empty turns metrics off."`
	ThrottleWindow   string  `toml:"throttle_window" json:"throttle_window" doc:"How often each running container's CPU throttling is measured (Go duration); \"0s\" turns the watch off."`
	ThrottleLogShare float64 `toml:"throttle_log_share" json:"throttle_log_share" doc:"Share of a window's CFS periods throttled (0 to 1) at which crid logs a container as CPU-throttled, once per window; the throttling metrics are kept whatever it is. 0.25, as the CPUThrottlingHigh alert operators run."`
}

// Throttling is the throttling watch's window and log threshold.
func (c Config) Throttling() (time.Duration, float64) {
	d, _ := time.ParseDuration(c.Metrics.ThrottleWindow)
	return d, c.Metrics.ThrottleLogShare
}

// DebugConfig is the [debug] table.
type DebugConfig struct {
	Pprof bool `toml:"pprof" json:"pprof" doc:"Serve Go's profiles (goroutines, heap, CPU) on /debug/pprof/ beside /metrics. Only with metrics.address on loopback: a profile shows crid's memory."`
}

// Default returns the configuration crid runs with when nothing is said.
func Default() Config {
	return Config{
		Root:     "/var/lib/crid",
		RunRoot:  "/run/crid",
		Listen:   "/run/crid/crid.sock",
		LogLevel: "info",
		Runtime: RuntimeConfig{
			CgroupDriver:   CgroupDriverCgroupfs,
			DefaultHandler: "crid",
			// Enough for any probe (the kubelet keeps 10 KiB), small enough
			// that ten execs printing without end hold a few MiB in all.
			ExecSyncOutputLimit: 256 << 10,
		},
		Image: ImageConfig{
			RegistriesConf:        "/etc/containers/registries.conf",
			PinnedImages:          []string{},
			PullProgressTimeout:   "1m",
			ConnectTimeout:        "30s",
			TLSHandshakeTimeout:   "10s",
			ResponseHeaderTimeout: "1m",
		},
		Network: NetworkConfig{
			CNIConfigDir:  "/etc/cni/net.d",
			CNIPluginDirs: []string{"/opt/cni/bin", "/usr/lib/cni"},
		},
		Streaming: StreamingConfig{Address: "127.0.0.1:0"},
		Metrics:   MetricsConfig{Address: "127.0.0.1:9539", ThrottleWindow: "30s", ThrottleLogShare: 0.25},
		// The paths NRI plugins look for by default, as containerd's and
		// CRI-O's: a plugin built for either finds crid.
		NRI: NRIConfig{
			Enable:                    true,
			SocketPath:                "/var/run/nri/nri.sock",
			PluginPath:                "/opt/nri/plugins",
			PluginConfigPath:          "/etc/nri/conf.d",
			PluginRegistrationTimeout: "5s",
			PluginRequestTimeout:      "2s",
		},
	}
}

// Load reads path over the defaults. A missing file is not an error when
// mustExist is false (the default path need not exist); any other problem
// is, and names the file, the key and the reason.
func Load(path string, mustExist bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !mustExist {
			return cfg, nil
		}
		return cfg, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := cfg.decode(string(data)); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// decode overlays TOML text on cfg, refusing keys crid does not know: a
// misspelt key silently ignored is a setting the operator thinks is in force.
func (c *Config) decode(text string) error {
	md, err := toml.Decode(text, c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown key %s (see `crid config` for every key)", strings.Join(keys, ", "))
	}
	return nil
}

// FieldError says which key holds a bad value and why.
type FieldError struct {
	Key    string
	Reason string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Reason }

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// MaxMessageSize is the largest gRPC message crid sends or takes, as large
// as the kubelet's (16 MiB).
const MaxMessageSize = 16 << 20

// MaxExecSyncOutputLimit is the largest runtime.exec_sync_output_limit:
// an ExecSync reply carries both streams, and leaves 64 KiB for the rest.
const MaxExecSyncOutputLimit = (MaxMessageSize - 64<<10) / 2

// maxSocketPath is the size of sun_path less its terminating NUL.
const maxSocketPath = 107

// Validate checks every value without touching the machine. Checks that
// depend on the machine (is the directory writable, are cgroups mounted)
// happen at start-up, where the daemon can say what it found.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Reason: fmt.Sprintf(format, args...)})
	}
	absPath := func(key, p string) {
		switch {
		case p == "":
			bad(key, "must not be empty")
		case !filepath.IsAbs(p):
			bad(key, "%q is not an absolute path", p)
		case filepath.Clean(p) != p:
			bad(key, "%q is not a clean path (use %q)", p, filepath.Clean(p))
		}
	}

	absPath("root", c.Root)
	absPath("runroot", c.RunRoot)
	absPath("listen", c.Listen)
	if len(c.Listen) > maxSocketPath {
		bad("listen", "%q is %d bytes; a unix socket path is at most %d", c.Listen, len(c.Listen), maxSocketPath)
	}
	if c.Root != "" && c.Root == c.RunRoot {
		bad("runroot", "must differ from root (%q): runtime state is discarded after a reboot", c.Root)
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}

	switch c.Runtime.CgroupDriver {
	case CgroupDriverCgroupfs:
	case CgroupDriverSystemd:
		bad("runtime.cgroup_driver", "the systemd cgroup driver is not implemented; use %q here and cgroupDriver: cgroupfs in the kubelet's configuration", CgroupDriverCgroupfs)
	default:
		bad("runtime.cgroup_driver", "%q is not a cgroup driver; use %q", c.Runtime.CgroupDriver, CgroupDriverCgroupfs)
	}
	if c.Runtime.PidsLimit < -1 {
		bad("runtime.pids_limit", "%d: use -1 for no limit, 0 to leave the pod's, or a positive count", c.Runtime.PidsLimit)
	}
	if n := c.Runtime.ExecSyncOutputLimit; n < 1 || n > MaxExecSyncOutputLimit {
		bad("runtime.exec_sync_output_limit", "%d: use a byte count from 1 to %d (both streams and the reply's framing must fit the 16 MiB message limit)", n, MaxExecSyncOutputLimit)
	}
	if !dnsLabel.MatchString(c.Runtime.DefaultHandler) {
		bad("runtime.default_handler", "%q is not a DNS label (lower-case letters, digits and '-', at most 63)", c.Runtime.DefaultHandler)
	}
	for i, h := range c.Runtime.Handlers {
		switch {
		case !dnsLabel.MatchString(h):
			bad(fmt.Sprintf("runtime.handlers[%d]", i), "%q is not a DNS label (lower-case letters, digits and '-', at most 63)", h)
		case h == c.Runtime.DefaultHandler || slices.Contains(c.Runtime.Handlers[:i], h):
			bad(fmt.Sprintf("runtime.handlers[%d]", i), "%q is named twice (runtime.default_handler is served already)", h)
		}
	}

	absPath("image.registries_conf", c.Image.RegistriesConf)
	for i, ref := range c.Image.PinnedImages {
		if _, err := name.ParseReference(ref, name.WeakValidation); err != nil {
			bad(fmt.Sprintf("image.pinned_images[%d]", i), "%q is not an image reference: %v", ref, err)
		}
	}

	for _, f := range []struct{ key, value string }{
		{"image.pull_progress_timeout", c.Image.PullProgressTimeout},
		{"image.connect_timeout", c.Image.ConnectTimeout},
		{"image.tls_handshake_timeout", c.Image.TLSHandshakeTimeout},
		{"image.response_header_timeout", c.Image.ResponseHeaderTimeout},
	} {
		if d, err := time.ParseDuration(f.value); err != nil || d <= 0 {
			bad(f.key, "%q is not a positive duration such as 30s or 2m", f.value)
		}
	}

	absPath("network.cni_config_dir", c.Network.CNIConfigDir)
	if len(c.Network.CNIPluginDirs) == 0 {
		bad("network.cni_plugin_dirs", "must name at least one directory")
	}
	for i, d := range c.Network.CNIPluginDirs {
		absPath(fmt.Sprintf("network.cni_plugin_dirs[%d]", i), d)
	}

	checkHostPort("streaming.address", c.Streaming.Address, false, bad)
	checkHostPort("metrics.address", c.Metrics.Address, true, bad)
	if d, err := time.ParseDuration(c.Metrics.ThrottleWindow); err != nil || d < 0 || d > 0 && d < time.Second {
		bad("metrics.throttle_window", "%q is not a duration of at least 1s (or 0s for none)", c.Metrics.ThrottleWindow)
	}
	if v := c.Metrics.ThrottleLogShare; v < 0 || v > 1 {
		bad("metrics.throttle_log_share", "%v is not a share from 0 to 1", v)
	}
	if c.Debug.Pprof && !onLoopback(c.Metrics.Address) {
		bad("debug.pprof", "needs metrics.address on loopback (127.0.0.1:PORT or [::1]:PORT), not %q: profiles show crid's memory", c.Metrics.Address)
	}

	if c.NRI.Enable {
		absPath("nri.socket_path", c.NRI.SocketPath)
		if len(c.NRI.SocketPath) > maxSocketPath {
			bad("nri.socket_path", "%q is %d bytes; a unix socket path is at most %d", c.NRI.SocketPath, len(c.NRI.SocketPath), maxSocketPath)
		}
		absPath("nri.plugin_path", c.NRI.PluginPath)
		absPath("nri.plugin_config_path", c.NRI.PluginConfigPath)
		for _, f := range []struct{ key, value string }{
			{"nri.plugin_registration_timeout", c.NRI.PluginRegistrationTimeout},
			{"nri.plugin_request_timeout", c.NRI.PluginRequestTimeout},
		} {
			if d, err := time.ParseDuration(f.value); err != nil || d <= 0 {
				bad(f.key, "%q is not a positive duration such as 2s or 500ms", f.value)
			}
		}
	}
	return errors.Join(errs...)
}

func checkHostPort(key, addr string, mayBeEmpty bool, bad func(key, format string, args ...any)) {
	if addr == "" {
		if !mayBeEmpty {
			bad(key, "must not be empty")
		}
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad(key, "%q is not host:port: %v", addr, err)
		return
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		bad(key, "%q: host must be an IP address or localhost", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad(key, "%q: port must be a number from 0 to 65535", addr)
	}
}

// onLoopback says whether addr (host:port) listens on loopback only.
func onLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseLogLevel turns a log_level value into a klog verbosity.
func ParseLogLevel(level string) (int, error) {
	switch strings.ToLower(level) {
	case "info":
		return 0, nil
	case "debug":
		return 4, nil
	case "trace":
		return 6, nil
	}
	if n, err := strconv.Atoi(level); err == nil && n >= 0 && n <= 10 {
		return n, nil
	}
	return 0, fmt.Errorf("%q is not info, debug, trace or a verbosity from 0 to 10", level)
}

// PullProgressTimeout is image.pull_progress_timeout as a duration; the
// value has been validated.
func (c *Config) PullProgressTimeout() time.Duration {
	d, _ := time.ParseDuration(c.Image.PullProgressTimeout)
	return d
}

// RegistryTimeouts are image.connect_timeout, tls_handshake_timeout and
// response_header_timeout as durations; the values have been validated.
func (c *Config) RegistryTimeouts() (connect, handshake, responseHeader time.Duration) {
	connect, _ = time.ParseDuration(c.Image.ConnectTimeout)
	handshake, _ = time.ParseDuration(c.Image.TLSHandshakeTimeout)
	responseHeader, _ = time.ParseDuration(c.Image.ResponseHeaderTimeout)
	return connect, handshake, responseHeader
}

// NRITimeouts are nri.plugin_registration_timeout and
// nri.plugin_request_timeout as durations; the values have been validated.
func (c *Config) NRITimeouts() (registration, request time.Duration) {
	registration, _ = time.ParseDuration(c.NRI.PluginRegistrationTimeout)
	request, _ = time.ParseDuration(c.NRI.PluginRequestTimeout)
	return registration, request
}
