package server

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs/errgrpc"
)

func TestCgroupResources(t *testing.T) {
	tests := []struct {
		name string
		in   *runtime.LinuxContainerResources
		pids int64
		want *cgroups.Resources
	}{
		{"nothing asked: the configured pids limit", nil, 1024, &cgroups.Resources{PidsLimit: 1024}},
		{"a burstable container", &runtime.LinuxContainerResources{
			CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 256 << 20,
			MemorySwapLimitInBytes: 256 << 20, CpusetCpus: "0", CpusetMems: "0", OomScoreAdj: 900,
			HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}},
			Unified:        map[string]string{"memory.high": "200000000"},
		}, -1, &cgroups.Resources{
			CPUShares: 512, CPUPeriod: 100000, CPUQuota: 50000, MemoryLimit: 256 << 20, MemorySwapLimit: 256 << 20,
			CPUSetCPUs: "0", CPUSetMems: "0", PidsLimit: -1,
			HugepageLimits: []cgroups.HugepageLimit{{PageSize: "2MB"}},
			Unified:        map[string]string{"memory.high": "200000000"},
		}},
		{"a resize that lifts the cpu limit", &runtime.LinuxContainerResources{CpuQuota: -1, CpuPeriod: 100000}, 0,
			&cgroups.Resources{CPUQuota: -1, CPUPeriod: 100000}},
		{"unlimited swap", &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 20, MemorySwapLimitInBytes: -1}, 0,
			&cgroups.Resources{MemoryLimit: 1 << 20, MemorySwapLimit: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cgroupResources(tt.in, tt.pids)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCgroupResourcesRefusals(t *testing.T) {
	for field, in := range map[string]*runtime.LinuxContainerResources{
		"cpu_shares":                 {CpuShares: -1},
		"cpu_period":                 {CpuPeriod: -5},
		"memory_limit_in_bytes":      {MemoryLimitInBytes: -1},
		"memory_swap_limit_in_bytes": {MemoryLimitInBytes: 100, MemorySwapLimitInBytes: 50},
		"cpu_quota":                  {CpuQuota: 10},
		"hugepage_limits":            {HugepageLimits: []*runtime.HugepageLimit{{PageSize: "big"}}},
		"unified":                    {Unified: map[string]string{"../x": "1"}},
	} {
		_, err := cgroupResources(in, 0)
		if errgrpc.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v (%v)", field, err, status.Code(errgrpc.ToGRPC(err)))
		}
	}
}

// What ContainerStatus reports is what the kubelet sent, back: a resize's
// round trip through crid's record changes nothing the kubelet reads.
func TestCriResourcesUndoCgroupResources(t *testing.T) {
	for _, in := range []*runtime.LinuxContainerResources{
		{CpuShares: 2, CpuPeriod: 100000, CpuQuota: 1000},
		{CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 256 << 20, MemorySwapLimitInBytes: 256 << 20,
			CpusetCpus: "0-1", CpusetMems: "0", HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}},
			Unified: map[string]string{"memory.high": "200000000"}},
		{CpuShares: 1024, CpuPeriod: 100000, CpuQuota: -1},
		{MemoryLimitInBytes: 1 << 20, MemorySwapLimitInBytes: -1},
	} {
		r, err := cgroupResources(in, -1)
		if err != nil {
			t.Fatal(err)
		}
		if got := criResources(r).GetLinux(); !proto.Equal(got, in) {
			t.Errorf("sent %+v\nreported %+v", in, got)
		}
	}
	if criResources(nil) != nil {
		t.Error("a container without a record of its limits reports some")
	}
}
