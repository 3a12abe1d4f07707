// Command crid-load runs the load of package load against any CRI
// endpoint and prints its report as JSON:
//
//	crid-load -endpoint unix:///run/crid/crid.sock -image 127.0.0.1:5000/busybox:it \
//	    -pods 50 -containers 3 -hold 30s -soak 1000 -pid $(pidof crid) -metrics http://127.0.0.1:9090/metrics
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/load"
)

func main() {
	endpoint := flag.String("endpoint", "unix:///run/crid/crid.sock", "the runtime's CRI socket")
	var cfg load.Config
	flag.StringVar(&cfg.Image, "image", "", "image with sleep and true (pulled first)")
	flag.IntVar(&cfg.Pods, "pods", 10, "pods made at once")
	flag.IntVar(&cfg.Containers, "containers", 3, "containers in each pod")
	flag.DurationVar(&cfg.Hold, "hold", 10*time.Second, "time everything stays up, polled and probed")
	flag.IntVar(&cfg.SoakCycles, "soak", 0, "container create/remove cycles after the load")
	flag.IntVar(&cfg.Pid, "pid", 0, "the runtime's PID, for RSS and descriptors")
	flag.StringVar(&cfg.Metrics, "metrics", "", "the runtime's Prometheus endpoint, for go_goroutines")
	flag.StringVar(&cfg.LogDir, "logs", os.TempDir(), "where the pods log")
	flag.Parse()
	if cfg.Image == "" {
		fmt.Fprintln(os.Stderr, "crid-load: -image is required")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crid-load:", err)
		os.Exit(1)
	}
	defer conn.Close()
	rep, err := load.Run(context.Background(), runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crid-load:", err)
		os.Exit(1)
	}
	out, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Println(string(out))
	if rep.Errors > 0 {
		os.Exit(1)
	}
}
