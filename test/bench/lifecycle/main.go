// Command lifecycle times the pod and container calls of CRI runtimes side
// by side, over gRPC directly, so the figures are the runtimes' and not a
// client's start-up.
//
// Rounds: each round runs, for every runtime in turn (the first runtime
// rotating, so none always goes first on a warm cache), one pod with the
// CNI network and one with the host's, each with one sleeping container:
// RunPodSandbox, CreateContainer, StartContainer, ContainerStatus,
// StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox, each
// timed alone. Then, with -keep, pods with a running container are left
// on every runtime and the memory of the runtime's per-pod processes
// (their PSS, summed, per pod) and of its daemon (RSS) is read at each
// count. With -density N, N pods of -containers each are made on every
// runtime, interleaved, and RunPodSandbox's latency at the first ten pods
// is set against the last ten, and the list and status calls the
// kubelet's relist makes are timed with them all there.
//
// The report is a table on stdout and, with -json, a JSON file.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// rpcs are the calls of a round, in the order a report lists them.
var rpcs = []string{"RunPodSandbox", "CreateContainer", "StartContainer", "ContainerStatus",
	"StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox",
	"Create+Start", "Stop+Remove (container and pod)"}

type target struct {
	Name   string `json:"name"`
	image  string
	pid    int            // the daemon
	perPod *regexp.Regexp // its per-pod processes' command lines
	rt     runtime.RuntimeServiceClient
	// times[network][rpc]
	times map[string]map[string][]time.Duration
	pods  []string
}

// Stats are a call's figures in milliseconds.
type Stats struct {
	N      int     `json:"n"`
	Median float64 `json:"medianMs"`
	P90    float64 `json:"p90Ms"`
	P99    float64 `json:"p99Ms"`
}

// Memory is what a runtime holds with some pods running.
type Memory struct {
	Pods         int    `json:"pods"`
	PerPodPSSkB  int64  `json:"perPodPssKb"`
	Processes    int    `json:"processes"`
	DaemonRSSkB  int64  `json:"daemonRssKb"`
	TotalPSSkB   int64  `json:"totalPssKb"` // daemon and per-pod processes
	DaemonPSSkB  int64  `json:"daemonPssKb"`
	PerPodDetail string `json:"perPodDetail,omitempty"`
}

// Density is a runtime's figures at many pods.
type Density struct {
	Pods             int              `json:"pods"`
	Containers       int              `json:"containers"`
	RunPodSandboxP99 [2]float64       `json:"runPodSandboxP99Ms"` // first ten, last ten
	RunPodSandboxP50 [2]float64       `json:"runPodSandboxP50Ms"`
	Relist           map[string]Stats `json:"relist"`
	// Replay is the relist against the runtime's own answers served by a
	// bare process (replay.go): the transport's and the client's floor.
	Replay            map[string]Stats `json:"replayRelist,omitempty"`
	Memory            Memory           `json:"memory"`
	CreateStartMedian float64          `json:"createStartMedianMs"`
	RestCPU           RestCPU          `json:"restCPU"`
}

// Report is the JSON output.
type Report struct {
	Date    string                                 `json:"date"`
	Load    string                                 `json:"load"`
	Rounds  int                                    `json:"rounds"`
	Calls   map[string]map[string]map[string]Stats `json:"calls"` // runtime, network, rpc
	Memory  map[string][]Memory                    `json:"memory"`
	Density map[string]*Density                    `json:"density,omitempty"`
	// Chain is the CNI chain's ADD and DEL alone, with no runtime (-chain).
	Chain map[string]Stats `json:"chain,omitempty"`
	// SettledSeconds is how long the node took to quiet down after the
	// density run's last pod, before the relists.
	SettledSeconds float64 `json:"settledSeconds,omitempty"`
	// DensityNetwork is the density pods' network, cni or host.
	DensityNetwork string   `json:"densityNetwork,omitempty"`
	Runtimes       []string `json:"runtimes"`
}

type targets []string

func (t *targets) String() string     { return strings.Join(*t, " ") }
func (t *targets) Set(s string) error { *t = append(*t, s); return nil }

func main() {
	var specs targets
	flag.Var(&specs, "rt", "a runtime: name=N,sock=PATH,image=REF,pid=DAEMON_PID,perpod=REGEXP (repeat)")
	rounds := flag.Int("rounds", 20, "rounds (each runtime: one CNI pod and one host-network pod a round)")
	keep := flag.String("keep", "", "pod counts to hold on every runtime and read memory at, e.g. 10,100")
	density := flag.Int("density", 0, "pods to make on every runtime for the density figures")
	containers := flag.Int("containers", 3, "containers per pod in the density run")
	densityNet := flag.String("density-network", "cni", "the density run's pods' network: cni or host (the runtime's own share)")
	logDir := flag.String("logs", os.TempDir(), "where pods log")
	jsonOut := flag.String("json", "", "write the report here too")
	nets := flag.String("networks", "cni,host", "the pods' networks in the rounds")
	chainConf := flag.String("chain", "", "a CNI conflist to run alone through libcni in each round, beside the runtimes (its own bridge and subnet)")
	chainBin := flag.String("chain-bin", "/usr/lib/cni:/opt/cni/bin", "where -chain's plugins are")
	flag.Parse()
	if dir := os.Getenv(replayEnv); dir != "" {
		fail(serveReplay(dir))
	}
	var ts []*target
	for _, s := range specs {
		t, err := connect(s)
		if err != nil {
			fail(err)
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		fail(fmt.Errorf("no -rt given"))
	}
	ctx := context.Background()
	rep := &Report{Date: time.Now().UTC().Format(time.RFC3339), Load: loadavg(), Rounds: *rounds,
		Calls: map[string]map[string]map[string]Stats{}, Memory: map[string][]Memory{}}
	for _, t := range ts {
		rep.Runtimes = append(rep.Runtimes, t.Name)
	}
	var alone *chain
	if *chainConf != "" {
		var err error
		if alone, err = newChain(*chainConf, *chainBin, filepath.Join(*logDir, "chain-netns")); err != nil {
			fail(err)
		}
	}
	for i := range *rounds {
		for _, net := range strings.Split(*nets, ",") {
			for k := range ts {
				t := ts[(i+k)%len(ts)]
				if err := t.round(ctx, fmt.Sprintf("r%d-%s", i, net), net == "host", *logDir); err != nil {
					fail(fmt.Errorf("%s: round %d (%s network): %w", t.Name, i, net, err))
				}
			}
			if alone != nil && net == "cni" {
				if err := alone.round(ctx, fmt.Sprintf("r%d", i)); err != nil {
					fail(err)
				}
			}
		}
	}
	if alone != nil {
		rep.Chain = map[string]Stats{"ADD": stats(alone.times["ADD"]), "DEL": stats(alone.times["DEL"])}
	}
	for _, t := range ts {
		rep.Calls[t.Name] = map[string]map[string]Stats{}
		for net, byRPC := range t.times {
			rep.Calls[t.Name][net] = map[string]Stats{}
			for rpc, d := range byRPC {
				rep.Calls[t.Name][net][rpc] = stats(d)
			}
		}
	}
	if *rounds > 0 {
		printCalls(rep, ts)
		save(rep, *jsonOut)
	}
	if *keep != "" {
		for _, f := range strings.Split(*keep, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				fail(fmt.Errorf("-keep %q: %w", *keep, err))
			}
			for _, t := range ts {
				for len(t.pods) < n {
					if _, err := t.pod(ctx, fmt.Sprintf("keep%d", len(t.pods)), false, 1, *logDir, nil); err != nil {
						fail(fmt.Errorf("%s: %w", t.Name, err))
					}
				}
			}
			time.Sleep(2 * time.Second) // let the per-pod processes settle
			for _, t := range ts {
				rep.Memory[t.Name] = append(rep.Memory[t.Name], t.memory(n))
			}
		}
		printMemory(rep, ts)
		save(rep, *jsonOut)
		for _, t := range ts {
			if err := t.removeAll(ctx); err != nil {
				fail(fmt.Errorf("%s: %w", t.Name, err))
			}
		}
	}
	if *density > 0 {
		rep.Density, rep.DensityNetwork = map[string]*Density{}, *densityNet
		for _, t := range ts {
			rep.Density[t.Name] = &Density{Pods: *density, Containers: *containers, Relist: map[string]Stats{}}
		}
		run := map[string][]time.Duration{}
		createStart := map[string][]time.Duration{}
		for i := range *density {
			for _, t := range ts {
				var cs []time.Duration
				d, err := t.pod(ctx, fmt.Sprintf("dense%d", i), *densityNet == "host", *containers, *logDir, &cs)
				if err != nil {
					fail(fmt.Errorf("%s: pod %d: %w", t.Name, i, err))
				}
				run[t.Name] = append(run[t.Name], d)
				createStart[t.Name] = append(createStart[t.Name], cs...)
			}
		}
		// The runtimes go on digesting their last pods for seconds after
		// the answers: containerd's daemon took 26% of a core and
		// CRI-O's 22% in a 2.5 s window about 2 s after one run's last
		// pod (perf sched), against 1.2% and 0% over 20 s a minute
		// later. The first runtime relisted shared the cores with that
		// and the last did not; the relists now wait for a quiet node.
		rep.SettledSeconds = settle(10, 2*time.Minute)
		for _, t := range ts {
			r, dn := run[t.Name], rep.Density[t.Name]
			first, last := stats(r[:min(10, len(r))]), stats(r[max(0, len(r)-10):])
			dn.RunPodSandboxP99 = [2]float64{first.P99, last.P99}
			dn.RunPodSandboxP50 = [2]float64{first.Median, last.Median}
			dn.CreateStartMedian = stats(createStart[t.Name]).Median
			if err := t.relist(ctx, dn, relistCalls); err != nil {
				fail(fmt.Errorf("%s: %w", t.Name, err))
			}
			if err := t.replay(ctx, dn, relistCalls); err != nil {
				fail(fmt.Errorf("%s: %w", t.Name, err))
			}
		}
		time.Sleep(2 * time.Second)
		for name, c := range restCPU(ts, 20*time.Second) {
			rep.Density[name].RestCPU = c
		}
		for _, t := range ts {
			rep.Density[t.Name].Memory = t.memory(*density)
		}
		printDensity(rep, ts)
		save(rep, *jsonOut)
		for _, t := range ts {
			if err := t.removeAll(ctx); err != nil {
				fail(fmt.Errorf("%s: %w", t.Name, err))
			}
		}
	}
	save(rep, *jsonOut)
}

// save writes the report so far: after each phase, so a run cut short
// keeps what it measured.
func save(rep *Report, path string) {
	if path == "" {
		return
	}
	data, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "lifecycle:", err)
	os.Exit(1)
}

func connect(spec string) (*target, error) {
	t := &target{times: map[string]map[string][]time.Duration{}}
	var sock string
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("-rt %q: %q is not key=value", spec, kv)
		}
		var err error
		switch k {
		case "name":
			t.Name = v
		case "sock":
			sock = v
		case "image":
			t.image = v
		case "pid":
			t.pid, err = strconv.Atoi(v)
		case "perpod":
			t.perPod, err = regexp.Compile(v)
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("-rt %q: %w", spec, err)
		}
	}
	if t.Name == "" || sock == "" || t.image == "" {
		return nil, fmt.Errorf("-rt %q: name, sock and image are needed", spec)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	t.rt = runtime.NewRuntimeServiceClient(conn)
	return t, nil
}

// podConfig is a pod as the kubelet makes one by default: a PID namespace
// per container (so no runtime needs an infra process for it).
func (t *target) podConfig(name string, hostNet bool, logDir string) *runtime.PodSandboxConfig {
	netMode := runtime.NamespaceMode_POD
	if hostNet {
		netMode = runtime.NamespaceMode_NODE
	}
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "bench-" + name, Namespace: "bench", Uid: t.Name + "-" + name},
		LogDirectory: filepath.Join(logDir, t.Name+"-"+name),
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: netMode, Pid: runtime.NamespaceMode_CONTAINER}}},
	}
}

func (t *target) containerConfig(name string, podCfg *runtime.PodSandboxConfig) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: t.image, UserSpecifiedImage: t.image},
		Command: []string{"sleep", "3600"}, LogPath: name + ".log", Linux: &runtime.LinuxContainerConfig{
			SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: podCfg.Linux.SecurityContext.NamespaceOptions}}}
}

// timed runs one call and records how long it took.
func (t *target) timed(net, rpc string, call func() error) error {
	t0 := time.Now()
	if err := call(); err != nil {
		return fmt.Errorf("%s: %w", rpc, err)
	}
	if t.times[net] == nil {
		t.times[net] = map[string][]time.Duration{}
	}
	t.times[net][rpc] = append(t.times[net][rpc], time.Since(t0))
	return nil
}

// round makes and removes one pod with one container, timing each call.
func (t *target) round(ctx context.Context, name string, hostNet bool, logDir string) error {
	net := "cni"
	if hostNet {
		net = "host"
	}
	podCfg := t.podConfig(name, hostNet, logDir)
	var pod, ctr string
	steps := []struct {
		rpc  string
		call func() error
	}{
		{"RunPodSandbox", func() error {
			r, err := t.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
			if err == nil {
				pod = r.PodSandboxId
			}
			return err
		}},
		{"CreateContainer", func() error {
			r, err := t.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: t.containerConfig("sleeper", podCfg)})
			if err == nil {
				ctr = r.ContainerId
			}
			return err
		}},
		{"StartContainer", func() error {
			_, err := t.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr})
			return err
		}},
		{"ContainerStatus", func() error {
			_, err := t.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctr})
			return err
		}},
		{"StopContainer", func() error {
			_, err := t.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: ctr, Timeout: 0})
			return err
		}},
		{"RemoveContainer", func() error {
			_, err := t.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr})
			return err
		}},
		{"StopPodSandbox", func() error {
			_, err := t.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
			return err
		}},
		{"RemovePodSandbox", func() error {
			_, err := t.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
			return err
		}},
	}
	for _, s := range steps {
		if err := t.timed(net, s.rpc, s.call); err != nil {
			return err
		}
	}
	// The sums a user waits for, from the same calls.
	last := func(rpc string) time.Duration { d := t.times[net][rpc]; return d[len(d)-1] }
	t.times[net]["Create+Start"] = append(t.times[net]["Create+Start"], last("CreateContainer")+last("StartContainer"))
	t.times[net]["Stop+Remove (container and pod)"] = append(t.times[net]["Stop+Remove (container and pod)"],
		last("StopContainer")+last("RemoveContainer")+last("StopPodSandbox")+last("RemovePodSandbox"))
	return nil
}

// pod leaves a pod (CNI-networked unless hostNet) with n running
// containers; it returns
// how long RunPodSandbox took, and appends each Create+Start to cs.
func (t *target) pod(ctx context.Context, name string, hostNet bool, n int, logDir string, cs *[]time.Duration) (time.Duration, error) {
	podCfg := t.podConfig(name, hostNet, logDir)
	t0 := time.Now()
	r, err := t.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		return 0, fmt.Errorf("RunPodSandbox: %w", err)
	}
	run := time.Since(t0)
	t.pods = append(t.pods, r.PodSandboxId)
	for i := range n {
		t1 := time.Now()
		c, err := t.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: r.PodSandboxId, SandboxConfig: podCfg,
			Config: t.containerConfig(fmt.Sprintf("c%d", i), podCfg)})
		if err != nil {
			return 0, fmt.Errorf("CreateContainer: %w", err)
		}
		if _, err := t.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			return 0, fmt.Errorf("StartContainer: %w", err)
		}
		if cs != nil {
			*cs = append(*cs, time.Since(t1))
		}
	}
	return run, nil
}

// relist times what the kubelet's PLEG and status manager ask of a node
// full of pods: the lists, and each container's status.
func (t *target) relist(ctx context.Context, d *Density, n int) error {
	var lc, lp, cs []time.Duration
	list, err := t.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		return err
	}
	ids := list.Containers
	// The client's garbage collection is not the runtime's time: a list
	// of 750 containers is about 0.5 MB of garbage in the client, whose
	// collections landed in the calls' tail. They run between the
	// timed calls instead.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	// A profiler the hook starts (perf sched, a Go trace) sees the calls;
	// the times file finds the slow ones in its record.
	if hook := os.Getenv(relistHookEnv); hook != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", hook)
		cmd.Env = append(os.Environ(), "RUNTIME="+t.Name)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", relistHookEnv, err)
		}
	}
	var starts []time.Time
	for i := range n {
		if i%10 == 0 {
			goruntime.GC()
		}
		t0 := time.Now()
		starts = append(starts, t0)
		if _, err := t.rt.ListContainers(ctx, &runtime.ListContainersRequest{}); err != nil {
			return err
		}
		t1 := time.Now()
		if _, err := t.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err != nil {
			return err
		}
		t2 := time.Now()
		if _, err := t.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ids[i%len(ids)].Id}); err != nil {
			return err
		}
		lc, lp, cs = append(lc, t1.Sub(t0)), append(lp, t2.Sub(t1)), append(cs, time.Since(t2))
	}
	d.Relist["ListContainers"], d.Relist["ListPodSandbox"], d.Relist["ContainerStatus"] = stats(lc), stats(lp), stats(cs)
	d.Relist["containers listed"] = Stats{N: len(ids)}
	if prefix := os.Getenv(relistTimesEnv); prefix != "" {
		var b strings.Builder
		for i, t0 := range starts {
			fmt.Fprintf(&b, "%d %d %d\n", i, t0.UnixMicro(), lc[i].Microseconds())
		}
		if err := os.WriteFile(prefix+"."+strings.ReplaceAll(t.Name, " ", "_"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("%s: %w", relistTimesEnv, err)
		}
	}
	return nil
}

// relistCalls is how many times each relist asks each call. A p99 of 200
// was the second or third slowest call: one or two threads of a call
// woken behind another process's few milliseconds on a core (perf sched)
// decided it, run to run. Of 1000 it is the tenth.
const relistCalls = 1000

// To look into a relist: relistHookEnv is a shell command run before each
// runtime's relist, and its replay's, told which in RUNTIME ("crid",
// "crid replayed"); it may start a profiler in the background and
// return. relistTimesEnv is a path prefix: each relist writes there, to
// PREFIX.RUNTIME, a line per ListContainers: its index, its start (Unix
// µs) and how long it took (µs).
const (
	relistHookEnv  = "LIFECYCLE_RELIST_HOOK"
	relistTimesEnv = "LIFECYCLE_RELIST_TIMES"
)

// removeAll removes the pods left running as the kubelet does: their
// containers stopped first, at once (a `sleep` as PID 1 ignores SIGTERM,
// and a pod stop would wait out each runtime's own grace period).
func (t *target) removeAll(ctx context.Context) error {
	for _, p := range t.pods {
		cs, err := t.rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: p}})
		if err != nil {
			return err
		}
		for _, c := range cs.Containers {
			if _, err := t.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: c.Id, Timeout: 0}); err != nil {
				return err
			}
		}
		if _, err := t.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p}); err != nil {
			return err
		}
		if _, err := t.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p}); err != nil {
			return err
		}
	}
	t.pods = nil
	return nil
}

// memory reads the PSS of the runtime's per-pod processes (those whose
// command line matches, and what they started but the containers' own
// `sleep`s) and of its daemon.
func (t *target) memory(pods int) Memory {
	m := Memory{Pods: pods}
	procs := processes()
	kinds := map[string]int{}
	for pid := range t.perPodProcesses(procs) {
		m.TotalPSSkB += pss(pid)
		m.Processes++
		kinds[strings.Fields(procs[pid].cmd + " ?")[0]]++
	}
	if pods > 0 {
		m.PerPodPSSkB = m.TotalPSSkB / int64(pods)
	}
	var detail []string
	for k, n := range kinds {
		detail = append(detail, fmt.Sprintf("%d %s", n, filepath.Base(k)))
	}
	sort.Strings(detail)
	m.PerPodDetail = strings.Join(detail, ", ")
	if t.pid > 0 {
		m.DaemonRSSkB = statusField(t.pid, "VmRSS:")
		m.DaemonPSSkB = pss(t.pid)
		m.TotalPSSkB += m.DaemonPSSkB
	}
	return m
}

// perPodProcesses are the runtime's processes of its pods among procs:
// those perPod matches, and their descendants but the workload itself.
func (t *target) perPodProcesses(procs map[int]proc) map[int]bool {
	mine := map[int]bool{}
	self := os.Getpid()
	for pid, p := range procs {
		if pid != self && pid != os.Getppid() && t.perPod != nil && t.perPod.MatchString(p.cmd) {
			mine[pid] = true
		}
	}
	// Descendants of a per-pod process are the runtime's too (a pause
	// process, a runc init), except the workload itself.
	for changed := true; changed; {
		changed = false
		for pid, p := range procs {
			if !mine[pid] && mine[p.ppid] && !strings.HasPrefix(p.cmd, "sleep") {
				mine[pid], changed = true, true
			}
		}
	}
	return mine
}

// RestCPU is what a runtime's processes take of the CPU with every pod
// running and nothing asked of it: the node's share a runtime keeps for
// itself, and what the other runtimes' calls share the cores with in the
// bench.
type RestCPU struct {
	Seconds float64 `json:"seconds"`
	// Percent of one core: the daemon (its reaped children too: a
	// runtime that execs a helper pays for it), and the per-pod processes.
	DaemonPct float64 `json:"daemonPct"`
	PerPodPct float64 `json:"perPodPct"`
}

// restCPU reads every runtime's CPU time over the same d, with none of
// them asked anything.
func restCPU(ts []*target, d time.Duration) map[string]RestCPU {
	type sample struct{ daemon, perPod map[int]int64 }
	take := func(prev []sample) []sample {
		procs := processes()
		out := make([]sample, len(ts))
		for i, t := range ts {
			out[i] = sample{map[int]int64{}, map[int]int64{}}
			if t.pid > 0 {
				out[i].daemon[t.pid] = cpuTicks(t.pid, true)
			}
			pids := t.perPodProcesses(procs)
			if prev != nil { // the processes of the first look: none comes in halfway
				pids = map[int]bool{}
				for pid := range prev[i].perPod {
					pids[pid] = true
				}
			}
			for pid := range pids {
				out[i].perPod[pid] = cpuTicks(pid, false)
			}
		}
		return out
	}
	used := func(a, b map[int]int64) (ticks int64) {
		for pid, t0 := range a {
			if t1, ok := b[pid]; ok && t1 >= t0 {
				ticks += t1 - t0
			}
		}
		return ticks
	}
	first := take(nil)
	t0 := time.Now()
	time.Sleep(d)
	last := take(first)
	secs := time.Since(t0).Seconds()
	out := map[string]RestCPU{}
	for i, t := range ts {
		pct := func(ticks int64) float64 { return float64(ticks) / userHZ / secs * 100 }
		out[t.Name] = RestCPU{Seconds: secs, DaemonPct: pct(used(first[i].daemon, last[i].daemon)), PerPodPct: pct(used(first[i].perPod, last[i].perPod))}
	}
	return out
}

// settle waits until the node has been busy under pct percent of its
// cores for two seconds in a row, or max has passed, and says how long
// that took.
func settle(pct float64, max time.Duration) float64 {
	t0 := time.Now()
	busy, total := cpuTotals()
	quiet := 0
	for quiet < 2 && time.Since(t0) < max {
		time.Sleep(time.Second)
		b, t := cpuTotals()
		if t > total && float64(b-busy)/float64(t-total)*100 < pct {
			quiet++
		} else {
			quiet = 0
		}
		busy, total = b, t
	}
	return time.Since(t0).Seconds()
}

// cpuTotals are the node's busy and total CPU ticks so far (/proc/stat:
// idle and iowait are not busy).
func cpuTotals() (busy, total int64) {
	data, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, v := range f[1:] {
		x, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest and guest_nice are in user and nice already
			break
		}
		total += x
		if i != 3 && i != 4 {
			busy += x
		}
	}
	return busy, total
}

// userHZ is the unit of /proc/PID/stat's times on Linux (USER_HZ).
const userHZ = 100

// cpuTicks is a process's user and system time so far, with its reaped
// children's when children is set (-1 if it is gone).
func cpuTicks(pid int, children bool) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3
	n := 2
	if children {
		n = 4
	}
	var sum int64
	for _, v := range f[11 : 11+n] { // utime, stime (14, 15), cutime, cstime
		x, _ := strconv.ParseInt(v, 10, 64)
		sum += x
	}
	return sum
}

type proc struct {
	ppid int
	cmd  string
}

func processes() map[int]proc {
	out := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		out[pid] = proc{ppid: int(statusField(pid, "PPid:")), cmd: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))}
	}
	return out
}

func statusField(pid int, field string) int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func pss(pid int) int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(data))
}

func stats(d []time.Duration) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) float64 {
		i := int(q*float64(len(s)) + 0.999999) // nearest rank
		return ms(s[min(max(i-1, 0), len(s)-1)])
	}
	return Stats{N: len(s), Median: ms(s[len(s)/2]), P90: at(0.9), P99: at(0.99)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// printCalls prints the rounds' table; the ratio is the first runtime's
// median over the lower median of the others.
func printCalls(rep *Report, ts []*target) {
	fmt.Printf("\n%d rounds, %s, load %s; median / p90 in ms; ratio = %s against the better of the others\n", rep.Rounds, rep.Date, rep.Load, ts[0].Name)
	for _, net := range []string{"cni", "host"} {
		if rep.Calls[ts[0].Name][net] == nil {
			continue
		}
		fmt.Printf("\n%s network\n%-34s", net, "")
		for _, t := range ts {
			fmt.Printf(" %18s", t.Name)
		}
		fmt.Printf(" %7s\n", "ratio")
		for _, rpc := range rpcs {
			fmt.Printf("%-34s", rpc)
			var others []float64
			for i, t := range ts {
				s := rep.Calls[t.Name][net][rpc]
				fmt.Printf(" %8.1f / %7.1f", s.Median, s.P90)
				if i > 0 {
					others = append(others, s.Median)
				}
			}
			if len(others) > 0 {
				sort.Float64s(others)
				if others[0] > 0 {
					fmt.Printf(" %7.2f", rep.Calls[ts[0].Name][net][rpc].Median/others[0])
				}
			}
			fmt.Println()
		}
		if net == "cni" && rep.Chain != nil {
			a, d := rep.Chain["ADD"], rep.Chain["DEL"]
			fmt.Printf("%-34s %8.1f / %7.1f   (DEL %.1f / %.1f)\n", "the chain alone: ADD (no runtime)", a.Median, a.P90, d.Median, d.P90)
		}
	}
}

func printMemory(rep *Report, ts []*target) {
	fmt.Printf("\nmemory: PSS of the per-pod processes, per pod; daemon RSS\n")
	for _, t := range ts {
		for _, m := range rep.Memory[t.Name] {
			fmt.Printf("  %-10s %4d pods: %6d kB per pod (%s); daemon RSS %6d kB\n", t.Name, m.Pods, m.PerPodPSSkB, m.PerPodDetail, m.DaemonRSSkB)
		}
	}
}

func printDensity(rep *Report, ts []*target) {
	fmt.Printf("\ndensity (%s network; the relists began once the node had quieted, %.0f s after the last pod)\n", rep.DensityNetwork, rep.SettledSeconds)
	for _, t := range ts {
		d := rep.Density[t.Name]
		fmt.Printf("  %-10s %d pods x %d containers: RunPodSandbox p50 %.1f -> %.1f ms, p99 %.1f -> %.1f ms (first ten -> last ten); Create+Start median %.1f ms\n",
			t.Name, d.Pods, d.Containers, d.RunPodSandboxP50[0], d.RunPodSandboxP50[1], d.RunPodSandboxP99[0], d.RunPodSandboxP99[1], d.CreateStartMedian)
		for _, rpc := range []string{"ListContainers", "ListPodSandbox", "ContainerStatus"} {
			s := d.Relist[rpc]
			fmt.Printf("  %-10s   %-16s p50 %6.2f ms  p99 %6.2f ms (%d containers)", "", rpc, s.Median, s.P99, d.Relist["containers listed"].N)
			if r, ok := d.Replay[rpc]; ok {
				fmt.Printf("; its answers from a bare server: p50 %6.2f ms  p99 %6.2f ms", r.Median, r.P99)
			}
			fmt.Println()
		}
		fmt.Printf("  %-10s   total PSS %d kB (daemon %d kB, %s); daemon RSS %d kB\n", "", d.Memory.TotalPSSkB, d.Memory.DaemonPSSkB, d.Memory.PerPodDetail, d.Memory.DaemonRSSkB)
		fmt.Printf("  %-10s   CPU at rest over %.0f s: daemon %.1f%%, per-pod processes %.1f%% of a core\n", "", d.RestCPU.Seconds, d.RestCPU.DaemonPct, d.RestCPU.PerPodPct)
	}
}
