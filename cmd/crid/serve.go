package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/infra"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/nri"
	"github.com/crid-dev/crid/pkg/oci/monitor"
	"github.com/crid-dev/crid/pkg/reexec"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/sdnotify"
	"github.com/crid-dev/crid/pkg/server"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/trash"
	"github.com/crid-dev/crid/pkg/version"
)

// shutdownGrace is how long in-flight calls get to finish on SIGTERM before
// the remaining ones (long-lived event streams) are cut.
const shutdownGrace = 10 * time.Second

// serve runs the daemon until SIGTERM or SIGINT.
func serve(cfg config.Config) error {
	// Taken first, so that nothing crid starts inherits it.
	notify := sdnotify.FromEnv()
	if err := setupLogging(cfg.LogLevel); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("crid must run as root (it creates namespaces, mounts and cgroups); effective uid is %d", os.Geteuid())
	}
	// The host's cgroup mounts, read once: every monitor and container
	// init is handed them instead of reading the node's whole mountinfo.
	cgroupMounts, err := cgroups.Mounts()
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	cg, err := cgroups.DiscoverFrom(cgroupMounts)
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	cg.TolerateMissingHugetlb = cfg.Runtime.TolerateMissingHugetlbController
	if policy, warning := cg.HugetlbReport(cg.TolerateMissingHugetlb); warning != "" {
		klog.InfoS("Huge pages reserved on this host cannot be limited", "warning", warning, "policy", policy)
	} else if policy != "" {
		klog.InfoS("No hugetlb controller", "policy", policy)
	}
	for _, d := range []struct{ what, path string }{
		{"root dir", cfg.Root}, {"runroot dir", cfg.RunRoot}, {"socket dir", filepath.Dir(cfg.Listen)},
	} {
		if err := usableDir(d.path); err != nil {
			return fmt.Errorf("%s %s is unusable: %w", d.what, d.path, err)
		}
	}

	st, err := store.Open(cfg.Root)
	if err != nil {
		return err
	}
	defer st.Close()
	// crid's metrics are recorded from the start, whether or not they are
	// served (metrics.address empty): recording costs a map lookup.
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	connect, handshake, responseHeader := cfg.RegistryTimeouts()
	images, err := image.New(image.Options{
		Layout:         image.Layout{Root: cfg.Root},
		Store:          st,
		RegistriesConf: cfg.Image.RegistriesConf,
		Pinned:         cfg.Image.PinnedImages,
		StallTimeout:   cfg.PullProgressTimeout(),
		Timeouts:       image.Timeouts{Connect: connect, TLSHandshake: handshake, ResponseHeader: responseHeader},
		Metrics:        m,
	})
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	runLock, err := store.LockDir(cfg.RunRoot)
	if err != nil {
		return err
	}
	defer runLock.Close()
	binary, err := reexec.Seal()
	if err != nil {
		return err
	}
	defer binary.Close()
	// The processes left beside each pod (monitor, infra, container init)
	// run from small binaries of their own, installed next to crid.
	monitorBin, err := sealCompanion(MonitorBinary)
	if err != nil {
		return err
	}
	defer monitorBin.Close()
	podmonBin, err := sealCompanion(PodMonitorBinary)
	if err != nil {
		return err
	}
	defer podmonBin.Close()
	monitors := monitor.Binaries{Monitor: podmonBin, Helper: monitorBin}
	// Removed pods' and containers' files are deleted after their calls
	// return; a clean stop leaves the bins empty, a crash's leftovers go
	// at the next start.
	bin, err := trash.Open(filepath.Join(cfg.Root, "trash"), filepath.Join(cfg.RunRoot, "trash"))
	if err != nil {
		return err
	}
	bin.OnError = func(path string, err error) {
		klog.ErrorS(err, "Deleting a removed directory; retried later", "path", path)
	}
	bin.Start()
	defer bin.Close()
	// The managers know nothing of each other or of NRI: the server
	// calls each in turn, and NRI plugins between their steps.
	plugins, err := nri.New(cfg, m)
	if err != nil {
		return err
	}
	sandboxes, err := sandbox.New(context.Background(), sandbox.Options{
		RunRoot:  cfg.RunRoot,
		Store:    st,
		Cgroups:  cg,
		CNI:      cni.NewManager(cfg.Network.CNIConfigDir, cfg.Network.CNIPluginDirs, filepath.Join(cfg.Root, "cni-cache"), m),
		Monitors: sandbox.MonitorBinary{Binaries: monitors, Metrics: m, CgroupMounts: cgroupMounts},
		Kernel:   sandbox.Host{Binary: podmonBin, Cgroups: cg, InfraSeccomp: sync.OnceValues(infra.Program), Trash: bin},
	})
	if err != nil {
		return fmt.Errorf("sandboxes: %w", err)
	}
	broker := events.New()
	containers, err := container.New(context.Background(), container.Options{
		Root: cfg.Root, RunRoot: cfg.RunRoot, Store: st, Cgroups: cg, Layers: images,
		Monitors: container.MonitorBinary{Binaries: monitors, CgroupMounts: cgroupMounts}, Execs: container.ExecBinary{Binary: binary},
		Events: broker, Metrics: m, Throttling: throttling(cfg), Trash: bin,
	})
	if err != nil {
		return fmt.Errorf("containers: %w", err)
	}
	defer containers.Close()
	metrics.RegisterStates(reg, func() (map[string]int, map[string]int) {
		pods := map[string]int{string(sandbox.Ready): 0, string(sandbox.NotReady): 0}
		for _, s := range sandboxes.List() {
			pods[string(s.State)]++
		}
		ctrs := map[string]int{string(container.Created): 0, string(container.Running): 0, string(container.Exited): 0}
		for _, c := range containers.List() {
			ctrs[string(c.State)]++
		}
		return pods, ctrs
	})
	// Every container has held its layers: what nothing uses goes.
	if err := images.CollectLayers(); err != nil {
		klog.ErrorS(err, "Freeing unused image layers at start-up")
	}
	if cfg.NRI.Enable {
		// A socket another crid (or containerd) still answers on is not
		// taken over: the library would remove it unasked.
		if err := checkSocket(cfg.NRI.SocketPath, "nri.socket_path"); err != nil {
			return err
		}
	}
	if err := plugins.Start(sandboxes, containers, broker); err != nil {
		return err
	}
	defer plugins.Stop()

	// Everything is up before the CRI socket appears, which is what a
	// kubelet (and a test) takes as crid being ready: the stop signals'
	// handling too, or a SIGTERM right after would kill crid uncleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 2)
	var metricsSrv *http.Server
	if cfg.Metrics.Address != "" {
		metricsSrv, err = serveMetrics(cfg.Metrics.Address, reg, cfg.Debug.Pprof, errc)
		if err != nil {
			return err
		}
		defer metricsSrv.Close()
	}
	lis, err := listenCRI(cfg.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Listen)

	g := grpc.NewServer(server.ServerOptions(m)...)
	srv := server.New(cfg, st, cg, images, sandboxes, containers, broker, plugins, m)
	srv.Register(g)
	stream, err := srv.StartStreaming(cfg.Streaming.Address)
	if err != nil {
		return err
	}
	defer stream.Stop()

	go func() { errc <- g.Serve(lis) }()

	klog.InfoS("crid serving", "version", version.Version, "commit", version.Commit(), "socket", cfg.Listen,
		"root", cfg.Root, "runroot", cfg.RunRoot, "cgroups", cg.String(), "cgroupDriver", cfg.Runtime.CgroupDriver)
	// Connections queue on the listener until Serve takes them, so the
	// socket serves from here: what a Type=notify unit waits for.
	if err := notify.Notify(sdnotify.Ready, "STATUS=serving "+cfg.Listen); err != nil {
		klog.ErrorS(err, "Could not tell the service manager crid is ready")
	}

	select {
	case <-ctx.Done():
		klog.InfoS("Shutting down: letting in-flight calls finish", "grace", shutdownGrace)
		err = nil
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	if err := notify.Notify(sdnotify.Stopping); err != nil {
		klog.ErrorS(err, "Could not tell the service manager crid is stopping")
	}
	broker.Close() // event streams end, not waited for
	gracefulStop(g, shutdownGrace)
	klog.InfoS("crid stopped")
	return err
}

func setupLogging(level string) error {
	v, err := config.ParseLogLevel(level)
	if err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	return fs.Set("v", strconv.Itoa(v))
}

// usableDir makes dir if needed and proves crid can create files in it: a
// read-only mount or a file in the way should stop crid at start, not fail
// the first pod.
func usableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".crid-probe-")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// listenCRI opens the CRI socket, mode 0660. A socket file left by a crid
// that died is removed; one that a live process still answers on is not
// taken over, and the error says who holds it.
func listenCRI(path string) (net.Listener, error) {
	if err := checkSocket(path, "--listen"); err != nil {
		return nil, err
	}
	// The umask closes the window in which the socket would exist with the
	// process's default mode.
	old := unix.Umask(0o117)
	lis, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return lis, nil
}

func checkSocket(path, option string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; remove it or choose another %s", path, option)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		who := peer(conn.(*net.UnixConn))
		conn.Close()
		return fmt.Errorf("%s is served by %s; stop it or choose another %s", path, who, option)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		klog.InfoS("Removing stale socket", "path", path)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale socket %s: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("probe socket %s: %w", path, err)
}

// peer names the process at the other end of a unix connection.
func peer(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return "a live process"
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cred == nil {
		return "a live process"
	}
	who := fmt.Sprintf("live process %d", cred.Pid)
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cred.Pid)); err == nil {
		who += " (" + string(comm[:len(comm)-1]) + ")"
	}
	return who
}

// serveMetrics serves Prometheus metrics on addr from a registry of crid's
// own, so that nothing registered by a library leaks into it unasked, and
// Go's profiles beside them when pprof is set (config allows that only on
// loopback). The profiles are mounted on this mux by hand: importing
// net/http/pprof registers them on http.DefaultServeMux, which crid never
// serves.
// defaultMemProfileRate is the Go runtime's own default.
const defaultMemProfileRate = 512 << 10

func serveMetrics(addr string, reg *prometheus.Registry, pprofOn bool, errc chan<- error) (*http.Server, error) {
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if pprofOn {
		// Off since main: the heap profile covers what is allocated from
		// here on.
		runtime.MemProfileRate = defaultMemProfileRate
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Addr: lis.Addr().String(), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics: %w", err)
		}
	}()
	klog.InfoS("Metrics serving", "address", lis.Addr().String(), "pprof", pprofOn)
	return srv, nil
}

func throttling(cfg config.Config) container.Throttling {
	window, share := cfg.Throttling()
	return container.Throttling{Window: window, Share: share}
}

// gracefulStop lets running calls finish, then cuts whatever is still open
// after grace: a kubelet's event stream never ends by itself.
func gracefulStop(g *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		g.Stop()
		<-done
	}
}

// The companion binaries crid runs, found beside its own executable:
// crid-monitor (Go: container inits, infra processes, the monitor's
// helpers) and crid-podmon (C: a pod's monitor).
const (
	MonitorBinary    = "crid-monitor"
	PodMonitorBinary = "crid-podmon"
)

// sealCompanion seals a copy of a companion binary.
func sealCompanion(name string) (*reexec.Binary, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := filepath.Join(filepath.Dir(self), name)
	b, err := reexec.SealFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s must be installed next to crid (%s): %w", name, p, err)
	}
	return b, nil
}
