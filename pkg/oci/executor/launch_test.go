package executor

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestPlanLaunch(t *testing.T) {
	adj := 300
	for _, tc := range []struct {
		name    string
		ns      []specs.LinuxNamespace
		mounts  []specs.Mount
		want    Launch
		wantErr error // nil: any error is a failure; ErrNeedsStartConfig or errAny
	}{
		{
			name: "own namespaces",
			ns:   []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.UTSNamespace}, {Type: specs.CgroupNamespace}},
			want: Launch{Clone: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS, OOMScoreAdj: &adj},
		},
		{
			name: "pod's namespaces joined",
			ns: []specs.LinuxNamespace{
				{Type: specs.MountNamespace}, {Type: specs.PIDNamespace, Path: "/proc/9/ns/pid"},
				{Type: specs.NetworkNamespace, Path: "/run/netns/x"}, {Type: specs.IPCNamespace, Path: "/proc/9/ns/ipc"},
			},
			want: Launch{Clone: unix.CLONE_NEWNS, JoinPID: "/proc/9/ns/pid", Join: []string{"/run/netns/x", "/proc/9/ns/ipc"}, OOMScoreAdj: &adj},
		},
		{
			name:    "user namespace",
			ns:      []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UserNamespace, Path: "/proc/9/ns/user"}},
			wantErr: ErrNeedsStartConfig,
		},
		{
			name:    "idmapped mount",
			ns:      []specs.LinuxNamespace{{Type: specs.MountNamespace}},
			mounts:  []specs.Mount{{Destination: "/data", UIDMappings: []specs.LinuxIDMapping{{Size: 1}}}},
			wantErr: ErrNeedsStartConfig,
		},
		{
			name:    "no mount namespace",
			ns:      []specs.LinuxNamespace{{Type: specs.PIDNamespace}},
			wantErr: errAny,
		},
		{
			name:    "mount namespace by path",
			ns:      []specs.LinuxNamespace{{Type: specs.MountNamespace, Path: "/proc/9/ns/mnt"}},
			wantErr: errAny,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &specs.Spec{
				Process: &specs.Process{Args: []string{"sh"}, OOMScoreAdj: &adj},
				Linux:   &specs.Linux{Namespaces: tc.ns},
				Mounts:  tc.mounts,
			}
			got, err := PlanLaunch(spec)
			switch {
			case tc.wantErr == errAny:
				if err == nil || errors.Is(err, ErrNeedsStartConfig) {
					t.Fatalf("PlanLaunch = %+v, %v; want a refusal", got, err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("PlanLaunch error %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case got.Clone != tc.want.Clone || got.JoinPID != tc.want.JoinPID || !slices.Equal(got.Join, tc.want.Join) ||
				got.OOMScoreAdj == nil || *got.OOMScoreAdj != adj:
				t.Errorf("PlanLaunch = %+v, want %+v", got, tc.want)
			}
		})
	}
}

var errAny = errors.New("any error")
