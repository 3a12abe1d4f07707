package monitor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// TestBothStartersStartTheSameContainer: a bundle with a start plan is
// started by crid-podmon itself, one without by the start helper; each
// case must come out the same both ways: output and exit, a terminal,
// the spec's oom_score_adj, namespaces joined by path (the PID one from
// the monitor, the rest from the child), and a spec error's kind.
func TestBothStartersStartTheSameContainer(t *testing.T) {
	for _, starter := range []string{"plan", "helper"} {
		t.Run(starter, func(t *testing.T) {
			f := setup(t)
			f.helper = starter == "helper"
			// A pod's infra stand-in, whose PID and network namespaces
			// the joining case joins; started in that case (a bundle's
			// cleanup empties every test cgroup).
			var pausePid int
			var netns string
			startPause := func(t *testing.T) {
				pause := f.bundle(t, "pause", "exec sleep 1000")
				var err error
				if pausePid, err = f.client.Start(context.Background(), Request{ID: "pause", Bundle: pause}); err != nil {
					t.Fatal(err)
				}
				// It runs until killed: its exit record, which the monitor
				// writes into its bundle, must be there before the bundle's
				// removal (a removal racing it found the directory not
				// empty). Cleanups run last in first out: this one first.
				t.Cleanup(func() {
					f.client.Kill(context.Background(), "pause", syscall.SIGKILL)
					waitExit(t, pause)
				})
				if netns, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pausePid)); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range []struct {
				name, script string
				tty, pause   bool
				edit         func(*specs.Spec)
				code         int
				want         func() []string // the log's lines, stream, tag and text
				wantErr      error
			}{
				{name: "plain", script: "echo out; exit 7", code: 7, want: lines("stdout F out")},
				{name: "terminal", script: "tty; exit 2", tty: true, code: 2, want: lines("stdout F /dev/pts/0")},
				{name: "oom-score-adj", script: "cat /proc/self/oom_score_adj", edit: func(s *specs.Spec) {
					adj := 567
					s.Process.OOMScoreAdj = &adj
				}, want: lines("stdout F 567")},
				{name: "joins", pause: true, script: "tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/self/ns/net", edit: func(s *specs.Spec) {
					for i, n := range s.Linux.Namespaces {
						if n.Type == specs.PIDNamespace || n.Type == specs.NetworkNamespace {
							s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", pausePid, map[specs.LinuxNamespaceType]string{specs.PIDNamespace: "pid", specs.NetworkNamespace: "net"}[n.Type])
						}
					}
				}, want: func() []string { return []string{"stdout F sleep 1000 ", "stdout F " + netns} }},
				// The monitor joined the pause's PID namespace for the
				// last clone only: a host-PID container sees the host's.
				{name: "host-pid-after-join", script: "tr '\\0' ' ' < /proc/1/cmdline; echo", edit: func(s *specs.Spec) {
					s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool {
						return n.Type == specs.PIDNamespace
					})
				}, want: func() []string {
					init, _ := os.ReadFile("/proc/1/cmdline")
					return []string{"stdout F " + strings.ReplaceAll(string(init), "\x00", " ")}
				}},
				{name: "no-program", script: "true", edit: func(s *specs.Spec) {
					s.Process.Args = []string{"no-such-program"}
				}, wantErr: errdefs.ErrInvalidArgument},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if tc.pause {
						startPause(t)
					}
					b := f.bundle(t, tc.name, tc.script, func(c *runtime.ContainerConfig) { c.Tty = tc.tty })
					if tc.edit != nil {
						f.editSpec(t, b, tc.edit)
					}
					if _, err := os.Stat(filepath.Join(b, StartPlanFile)); (err == nil) != !f.helper {
						t.Fatalf("start plan in the bundle: %v, want %v", err == nil, !f.helper)
					}
					logPath := filepath.Join(t.TempDir(), "log")
					_, err := f.client.Start(context.Background(), Request{ID: tc.name, Bundle: b, Log: logPath})
					if tc.wantErr != nil {
						if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), "no-such-program") {
							t.Fatalf("start: %v, want %v naming the program", err, tc.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if e := waitExit(t, b); e.ExitCode != tc.code {
						t.Fatalf("exit %+v, want code %d", e, tc.code)
					}
					var lines []string
					for _, l := range readLog(t, logPath) {
						lines = append(lines, strings.Join(l, " "))
					}
					if want := tc.want(); !slices.Equal(lines, want) {
						t.Errorf("log %q, want %q", lines, want)
					}
				})
			}
		})
	}
}

func lines(l ...string) func() []string { return func() []string { return l } }
