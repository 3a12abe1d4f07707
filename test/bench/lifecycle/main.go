// Command lifecycle times the pod and container calls of two CRI runtimes
// side by side, over gRPC directly, so the figures are the runtimes' and
// not a client's start-up: RunPodSandbox, CreateContainer+StartContainer,
// and StopContainer+RemoveContainer+StopPodSandbox+RemovePodSandbox, each
// the median of ROUNDS pods, alternating between the runtimes. With -keep
// N it then leaves N pods with a running container on each, for memory
// measurements.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type target struct {
	name, image, logDir string
	rt                  runtime.RuntimeServiceClient
	times               map[string][]time.Duration
}

func main() {
	a := flag.String("a", "", "first runtime: name=socket=image")
	b := flag.String("b", "", "second runtime: name=socket=image")
	rounds := flag.Int("rounds", 10, "pods per runtime")
	keep := flag.Int("keep", 0, "pods to leave running on each runtime")
	logDir := flag.String("logs", os.TempDir(), "where pods log")
	flag.Parse()
	var ts []*target
	for _, spec := range []string{*a, *b} {
		t, err := connect(spec, *logDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lifecycle:", err)
			os.Exit(1)
		}
		ts = append(ts, t)
	}
	ctx := context.Background()
	for i := range *rounds {
		for _, t := range ts {
			pod, ctr, err := t.up(ctx, fmt.Sprintf("r%d", i), true)
			if err == nil {
				err = t.down(ctx, pod, ctr)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "lifecycle: %s: %v\n", t.name, err)
				os.Exit(1)
			}
		}
	}
	fmt.Printf("medians over %d pods, from the runtimes' answers (%s / %s = ratio):\n", *rounds, ts[0].name, ts[1].name)
	for _, m := range []string{"RunPodSandbox", "CreateContainer+StartContainer", "Stop+Remove (container and pod)"} {
		x, y := median(ts[0].times[m]), median(ts[1].times[m])
		fmt.Printf("  %-32s %s %6.1f ms   %s %6.1f ms   ratio %.2f\n", m, ts[0].name, ms(x), ts[1].name, ms(y), float64(x)/float64(y))
	}
	for i := range *keep {
		for _, t := range ts {
			if _, _, err := t.up(ctx, fmt.Sprintf("keep%d", i), false); err != nil {
				fmt.Fprintf(os.Stderr, "lifecycle: %s: %v\n", t.name, err)
				os.Exit(1)
			}
		}
	}
}

func connect(spec, logDir string) (*target, error) {
	parts := splitN(spec, '=', 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("%q is not name=socket=image", spec)
	}
	name, sock, image := parts[0], parts[1], parts[2]
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &target{name: name, image: image, logDir: logDir, rt: runtime.NewRuntimeServiceClient(conn), times: map[string][]time.Duration{}}, nil
}

func splitN(s string, sep byte, n int) []string {
	var out []string
	for len(out) < n-1 {
		i := -1
		for j := range len(s) {
			if s[j] == sep {
				i = j
				break
			}
		}
		if i < 0 {
			break
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return append(out, s)
}

// up runs a pod the way the kubelet does by default (a PID namespace per
// container) with one sleeping container.
func (t *target) up(ctx context.Context, name string, record bool) (string, string, error) {
	podCfg := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "bench-" + name, Namespace: "bench", Uid: t.name + "-" + name},
		LogDirectory: t.logDir + "/" + t.name + "-" + name,
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}},
	}
	t0 := time.Now()
	pod, err := t.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		return "", "", fmt.Errorf("RunPodSandbox: %w", err)
	}
	t1 := time.Now()
	ctr, err := t.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: podCfg,
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "sleeper"}, Image: &runtime.ImageSpec{Image: t.image},
			Command: []string{"sleep", "3600"}, LogPath: "sleeper.log", Linux: &runtime.LinuxContainerConfig{
				SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}}}})
	if err != nil {
		return "", "", fmt.Errorf("CreateContainer: %w", err)
	}
	if _, err := t.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		return "", "", fmt.Errorf("StartContainer: %w", err)
	}
	t2 := time.Now()
	if record {
		t.times["RunPodSandbox"] = append(t.times["RunPodSandbox"], t1.Sub(t0))
		t.times["CreateContainer+StartContainer"] = append(t.times["CreateContainer+StartContainer"], t2.Sub(t1))
	}
	return pod.PodSandboxId, ctr.ContainerId, nil
}

func (t *target) down(ctx context.Context, pod, ctr string) error {
	t0 := time.Now()
	if _, err := t.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: ctr, Timeout: 0}); err != nil {
		return err
	}
	if _, err := t.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr}); err != nil {
		return err
	}
	if _, err := t.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		return err
	}
	if _, err := t.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		return err
	}
	t.times["Stop+Remove (container and pod)"] = append(t.times["Stop+Remove (container and pod)"], time.Since(t0))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
