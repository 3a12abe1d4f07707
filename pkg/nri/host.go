// Package nri hosts Node Resource Interface plugins: programs beside crid
// that hear of every pod and container change, in order, and may adjust a
// container as it is created (its mounts, environment, limits...) or
// resize others. It drives github.com/containerd/nri's runtime adaptation,
// which speaks the protocol; this package says what crid's pods and
// containers are in its terms and carries out what plugins ask.
//
// The CRI server calls it between the managers' steps, at the points of a
// pod's or container's life where a plugin may still act: a sandbox is
// told to plugins before it is committed, a container before it is, so a
// plugin that fails one fails the request and leaves nothing behind.
// Exits, which no request makes, it hears of from the events broker.
package nri

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"

	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/version"
)

// Host is crid's NRI runtime side. A nil Host, or one whose configuration
// turns NRI off, does nothing: every method may be called on it.
type Host struct {
	nri        *adaptation.Adaptation
	sandboxes  *sandbox.Manager
	containers *container.Manager
	running    atomic.Bool // Start done: the managers are set and plugins may be connected
	// stopped holds the containers whose end plugins are told or being
	// told of (closed once told), until their removal: each end is told
	// once.
	stopMu  sync.Mutex
	stopped map[string]chan struct{}
	// exits is the goroutine telling plugins of exits; Stop ends it.
	exitsDone chan struct{}
	cancel    func()
	// plugins is how many plugins the library holds, as it last said,
	// raised to one while one synchronizes. With none, no event is built:
	// each reads and decodes the container's spec, on the paths of every
	// start, stop and removal.
	plugins atomic.Int64
}

// pluginCount hears the library's metrics: its plugin count, which turns
// events on and off, and each plugin call, for crid's metrics.
type pluginCount struct {
	n *atomic.Int64
	m *metrics.Metrics
}

func (c pluginCount) UpdatePluginCount(n int) { c.n.Store(int64(n)) }
func (c pluginCount) RecordPluginInvocation(plugin, event string, err error) {
	c.m.NRICall(plugin, event, err)
}
func (c pluginCount) RecordPluginLatency(plugin, event string, took time.Duration) {
	c.m.NRILatency(plugin, event, took)
}
func (pluginCount) RecordPluginAdjustments(string, string, *adaptation.ContainerAdjustment, int, int) {
}

// New prepares the host for cfg; plugins connect only after Start. With
// NRI off it returns a Host that does nothing.
func New(cfg config.Config, m *metrics.Metrics) (*Host, error) {
	h := &Host{stopped: map[string]chan struct{}{}}
	if !cfg.NRI.Enable {
		return h, nil
	}
	nrilog.Set(klogLogger{})
	registration, request := cfg.NRITimeouts()
	// The library keeps its timeouts process-wide: one crid, one setting.
	adaptation.SetPluginRegistrationTimeout(registration)
	adaptation.SetPluginRequestTimeout(request)
	opts := []adaptation.Option{
		adaptation.WithSocketPath(cfg.NRI.SocketPath),
		adaptation.WithPluginPath(cfg.NRI.PluginPath),
		adaptation.WithPluginConfigPath(cfg.NRI.PluginConfigPath),
		adaptation.WithMetrics(pluginCount{&h.plugins, m}),
	}
	if cfg.NRI.DisableConnections {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	}
	a, err := adaptation.New("crid", version.Version, h.synchronize, h.updateFromPlugins, opts...)
	if err != nil {
		return nil, fmt.Errorf("nri: %w", err)
	}
	h.nri = a
	return h, nil
}

// Start begins hosting plugins over the node's sandboxes and containers:
// those in plugin_path are started, and the socket opens for others.
// Containers' exits are heard from broker.
func (h *Host) Start(sandboxes *sandbox.Manager, containers *container.Manager, broker *events.Broker) error {
	if h == nil || h.nri == nil {
		return nil
	}
	h.sandboxes, h.containers = sandboxes, containers
	h.running.Store(true)
	if err := h.nri.Start(); err != nil {
		h.running.Store(false)
		return fmt.Errorf("nri: %w", err)
	}
	ch, unsubscribe := broker.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = func() { cancel(); unsubscribe() }
	h.exitsDone = make(chan struct{})
	go h.watchExits(ctx, ch)
	return nil
}

// watchExits tells plugins of each container's end as the container
// manager publishes it. A container the broker's buffer dropped the end
// of is still told before its removal (RemoveContainer's caller).
func (h *Host) watchExits(ctx context.Context, ch <-chan events.Event) {
	defer close(h.exitsDone)
	for e := range ch {
		if e.Type != events.Stopped || e.ContainerID == e.SandboxID {
			continue
		}
		h.stopExited(ctx, e.ContainerID)
	}
}

// Stop disconnects every plugin, closes the socket and ends the exit
// watcher.
func (h *Host) Stop() {
	if !h.on() {
		return
	}
	h.running.Store(false)
	h.cancel()
	<-h.exitsDone
	h.nri.Stop()
}

// claimStop claims the telling of id's end. The first caller gets first
// and closes told once plugins have heard; the others wait on told.
func (h *Host) claimStop(id string) (told chan struct{}, first bool) {
	h.stopMu.Lock()
	defer h.stopMu.Unlock()
	if ch, ok := h.stopped[id]; ok {
		return ch, false
	}
	ch := make(chan struct{})
	h.stopped[id] = ch
	return ch, true
}

func (h *Host) forgetStop(id string) {
	h.stopMu.Lock()
	delete(h.stopped, id)
	h.stopMu.Unlock()
}

// on says the host is started; active, that plugins are there to hear.
func (h *Host) on() bool     { return h != nil && h.nri != nil && h.running.Load() }
func (h *Host) active() bool { return h.on() && h.plugins.Load() > 0 }

// BlockSync holds off a newly connected plugin's synchronization until the
// returned function is called. A request that creates a pod or container
// holds it throughout, so a plugin either finds the new object in its
// Synchronize or hears of it by event: never neither.
func (h *Host) BlockSync() (unblock func()) {
	if !h.on() {
		return func() {}
	}
	return h.nri.BlockPluginSync().Unblock
}

// refused wraps a plugin's refusal: the request fails because a plugin said
// no, which is neither the caller's input nor a fault of crid's.
func refused(what string, err error) error {
	return fmt.Errorf("an NRI plugin failed %s: %v: %w", what, err, errdefs.ErrFailedPrecondition)
}

// RunPodSandbox asks the plugins about a prepared sandbox; an error
// fails RunPodSandbox, which abandons it.
func (h *Host) RunPodSandbox(ctx context.Context, s *sandbox.Sandbox) error {
	if !h.active() {
		return nil
	}
	if err := h.nri.RunPodSandbox(ctx, &adaptation.RunPodSandboxRequest{Pod: podSandbox(s)}); err != nil {
		return refused("RunPodSandbox", err)
	}
	return nil
}

// StopPodSandbox tells plugins a ready sandbox is stopping: its containers
// have stopped, its network is still there. A stop cannot be refused: a
// plugin's error is logged.
func (h *Host) StopPodSandbox(ctx context.Context, s *sandbox.Sandbox) {
	if !h.active() {
		return
	}
	if err := h.nri.StopPodSandbox(ctx, &adaptation.StopPodSandboxRequest{Pod: podSandbox(s)}); err != nil {
		logctx.From(logctx.With(ctx, "pod", s.ID)).Error(err, "NRI plugins failed a sandbox's stop; stopping it anyway")
	}
}

// RemovePodSandbox tells plugins a sandbox is gone.
func (h *Host) RemovePodSandbox(ctx context.Context, s *sandbox.Sandbox) {
	if !h.active() {
		return
	}
	if err := h.nri.RemovePodSandbox(ctx, &adaptation.RemovePodSandboxRequest{Pod: podSandbox(s)}); err != nil {
		logctx.From(logctx.With(ctx, "pod", s.ID)).Error(err, "NRI plugins failed to hear of a sandbox's removal")
	}
}

// pod finds a container's sandbox for an event about it. A container
// whose sandbox is gone (removed beneath it after a crash) is told with
// the sandbox's ID alone.
func (h *Host) pod(c *container.Container) *adaptation.PodSandbox {
	s, err := h.sandboxes.Get(c.SandboxID)
	if err != nil {
		return &adaptation.PodSandbox{Id: c.SandboxID}
	}
	return podSandbox(s)
}
