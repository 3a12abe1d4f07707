// Package load drives a CRI runtime as a busy node's kubelet does, over
// its gRPC socket, so that any runtime can be measured the same way:
// pods and their containers made concurrently while ListPodSandbox,
// ListContainers and ContainerStatus are polled as the kubelet's PLEG
// polls them and ExecSync probes run; then a soak of create/remove cycles.
// It counts errors, times every call (p50, p99) and samples the runtime's
// RSS, file descriptors and goroutines before and after.
package load

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is one run.
type Config struct {
	Pods, Containers int    // made concurrently, Containers in each pod
	Image            string // pulled first; its shell runs `sleep`
	LogDir           string
	Hold             time.Duration // polled and probed with everything up
	SoakCycles       int           // create, start, stop, remove of a container, one after another
	// Pid is the runtime's process, for RSS and descriptors (0: not
	// sampled); Metrics its Prometheus endpoint, for go_goroutines.
	Pid     int
	Metrics string
}

// Stat is one RPC's figures.
type Stat struct {
	Calls, Errors int
	P50, P99      time.Duration
	FirstError    string `json:",omitempty"`
}

// Sample is the runtime's footprint at one moment.
type Sample struct {
	RSSKiB, FDs, Goroutines int
}

// Report is what a run measured.
type Report struct {
	RPCs                          map[string]Stat
	Errors                        int
	Before, AfterLoad, AfterSoak  Sample
	SoakCycles                    int
	SoakFirstHalf, SoakSecondHalf time.Duration // the cycles' medians: growth shows as slowing
}

type recorder struct {
	mu     sync.Mutex
	times  map[string][]time.Duration
	errors map[string]int
	first  map[string]string
}

func (r *recorder) time(method string, call func() error) error {
	start := time.Now()
	err := call()
	took := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times[method] = append(r.times[method], took)
	if err != nil {
		r.errors[method]++
		if r.first[method] == "" {
			r.first[method] = err.Error()
		}
	}
	return err
}

// Run drives rt and img as cfg says.
func Run(ctx context.Context, rt runtime.RuntimeServiceClient, img runtime.ImageServiceClient, cfg Config) (*Report, error) {
	rec := &recorder{times: map[string][]time.Duration{}, errors: map[string]int{}, first: map[string]string{}}
	if _, err := img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: cfg.Image}}); err != nil {
		return nil, fmt.Errorf("pull %s: %w", cfg.Image, err)
	}
	rep := &Report{Before: sample(cfg)}

	// The kubelet's PLEG and probes, for as long as the load runs.
	// Probes end before the pods are torn down, as the kubelet stops a
	// pod's probers before it kills its containers (an exec cut short by
	// the kill fails, here as there).
	pollCtx, stopPolling := context.WithCancel(ctx)
	probeCtx, stopProbing := context.WithCancel(ctx)
	var pollers, probers sync.WaitGroup
	pollers.Add(1)
	go func() { defer pollers.Done(); pleg(pollCtx, rt, rec) }()
	probers.Add(1)
	go func() { defer probers.Done(); probe(probeCtx, rt, rec) }()

	type pod struct {
		id   string
		cfg  *runtime.PodSandboxConfig
		ctrs []string
	}
	pods := make([]*pod, cfg.Pods)
	var makers sync.WaitGroup
	for i := range cfg.Pods {
		makers.Add(1)
		go func() {
			defer makers.Done()
			p := &pod{cfg: podConfig(fmt.Sprintf("load-%d", i), cfg.LogDir)}
			pods[i] = p
			if rec.time("RunPodSandbox", func() error {
				resp, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: p.cfg})
				if err == nil {
					p.id = resp.PodSandboxId
				}
				return err
			}) != nil {
				return
			}
			for j := range cfg.Containers {
				if id, err := startContainer(ctx, rt, rec, p.id, p.cfg, fmt.Sprintf("c%d", j), cfg.Image); err == nil {
					p.ctrs = append(p.ctrs, id)
				}
			}
		}()
	}
	makers.Wait()
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
	}
	stopProbing()
	probers.Wait()
	var removers sync.WaitGroup
	for _, p := range pods {
		if p.id == "" {
			continue
		}
		removers.Add(1)
		go func() {
			defer removers.Done()
			for _, c := range p.ctrs {
				stopRemove(ctx, rt, rec, c)
			}
			rec.time("StopPodSandbox", func() error {
				_, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.id})
				return err
			})
			rec.time("RemovePodSandbox", func() error {
				_, err := rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.id})
				return err
			})
		}()
	}
	removers.Wait()
	stopPolling()
	pollers.Wait()
	rep.AfterLoad = settled(cfg, rep.Before)

	// The soak: one pod, a container made and removed again and again.
	if cfg.SoakCycles > 0 {
		pc := podConfig("soak", cfg.LogDir)
		resp, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pc})
		if err != nil {
			return nil, fmt.Errorf("soak pod: %w", err)
		}
		var cycles []time.Duration
		for i := range cfg.SoakCycles {
			start := time.Now()
			if id, err := startContainer(ctx, rt, rec, resp.PodSandboxId, pc, "soak", cfg.Image, uint32(i)); err == nil {
				stopRemove(ctx, rt, rec, id)
			}
			cycles = append(cycles, time.Since(start))
		}
		rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		rep.SoakCycles = len(cycles)
		rep.SoakFirstHalf, rep.SoakSecondHalf = percentile(cycles[:len(cycles)/2], 50), percentile(cycles[len(cycles)/2:], 50)
		rep.AfterSoak = settled(cfg, rep.Before)
	}

	rep.RPCs = map[string]Stat{}
	for m, ts := range rec.times {
		s := Stat{Calls: len(ts), Errors: rec.errors[m], P50: percentile(ts, 50), P99: percentile(ts, 99), FirstError: rec.first[m]}
		rep.RPCs[m] = s
		rep.Errors += s.Errors
	}
	return rep, nil
}

func podConfig(name, logDir string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "load", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: logDir + "/" + name,
		Linux:        &runtime.LinuxPodSandboxConfig{},
	}
}

func startContainer(ctx context.Context, rt runtime.RuntimeServiceClient, rec *recorder, pod string, pc *runtime.PodSandboxConfig, name, image string, attempt ...uint32) (string, error) {
	md := &runtime.ContainerMetadata{Name: name}
	if len(attempt) > 0 {
		md.Attempt = attempt[0]
	}
	cfg := &runtime.ContainerConfig{Metadata: md, Image: &runtime.ImageSpec{Image: image},
		Command: []string{"sleep", "3600"}, LogPath: fmt.Sprintf("%s-%d.log", name, md.Attempt)}
	var id string
	if err := rec.time("CreateContainer", func() error {
		resp, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: pc})
		if err == nil {
			id = resp.ContainerId
		}
		return err
	}); err != nil {
		return "", err
	}
	err := rec.time("StartContainer", func() error {
		_, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
		return err
	})
	return id, err
}

func stopRemove(ctx context.Context, rt runtime.RuntimeServiceClient, rec *recorder, id string) {
	rec.time("StopContainer", func() error {
		_, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 0})
		return err
	})
	rec.time("RemoveContainer", func() error {
		_, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id})
		return err
	})
}

// pleg lists pods and containers and asks each container's status, as
// the kubelet's pod lifecycle event generator does every second; faster
// here, to load the runtime.
func pleg(ctx context.Context, rt runtime.RuntimeServiceClient, rec *recorder) {
	for ctx.Err() == nil {
		rec.time("ListPodSandbox", func() error {
			_, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
			return ignoreCancel(ctx, err)
		})
		var ctrs []*runtime.Container
		rec.time("ListContainers", func() error {
			resp, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{})
			ctrs = resp.GetContainers()
			return ignoreCancel(ctx, err)
		})
		for _, c := range ctrs {
			rec.time("ContainerStatus", func() error {
				_, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.Id})
				return ignoreGone(ctx, err)
			})
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// probe runs an exec probe in every running container, over and over.
func probe(ctx context.Context, rt runtime.RuntimeServiceClient, rec *recorder) {
	for ctx.Err() == nil {
		resp, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
			State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}})
		if err == nil {
			for _, c := range resp.Containers {
				rec.time("ExecSync", func() error {
					r, err := rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: c.Id, Cmd: []string{"true"}, Timeout: 10})
					if err == nil && r.ExitCode != 0 {
						err = fmt.Errorf("probe exit %d: %s", r.ExitCode, r.Stderr)
					}
					return ignoreGone(ctx, err)
				})
			}
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// ignoreCancel forgives the error of a call cut short by the run's end.
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// ignoreGone also forgives a container removed between the list and the
// call, which a kubelet sees too and shrugs off.
func ignoreGone(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return nil
	}
	if c := status.Code(err); c == codes.NotFound || c == codes.FailedPrecondition {
		return nil
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

func percentile(ts []time.Duration, p int) time.Duration {
	if len(ts) == 0 {
		return 0
	}
	s := slices.Clone(ts)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// settled samples the runtime once its goroutines and descriptors have
// come back to near base, waiting up to 10 s: the calls' own end
// asynchronously, and the connections of their clients (the metrics
// scrapes' and the streams' keep-alives) close after them.
func settled(cfg Config, base Sample) Sample {
	var s Sample
	for deadline := time.Now().Add(10 * time.Second); ; {
		s = sample(cfg)
		if s.Goroutines <= base.Goroutines+2 && s.FDs <= base.FDs+2 || time.Now().After(deadline) {
			return s
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func sample(cfg Config) Sample {
	var s Sample
	if cfg.Pid > 0 {
		if f, err := os.Open(fmt.Sprintf("/proc/%d/status", cfg.Pid)); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
					s.RSSKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				}
			}
			f.Close()
		}
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cfg.Pid)); err == nil {
			s.FDs = len(fds)
		}
	}
	if cfg.Metrics != "" {
		if resp, err := http.Get(cfg.Metrics); err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					s.Goroutines = int(f)
				}
			}
			resp.Body.Close()
		}
	}
	return s
}
