package cgroups

import (
	"reflect"
	"strings"
	"testing"
)

func TestShareToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 0, 1: 1, 2: 1, 1024: 39, 512: 20, 102: 4, 262144: 10000, 300000: 10000} {
		if got := ShareToWeight(shares); got != want {
			t.Errorf("ShareToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
}

func TestV2Values(t *testing.T) {
	tests := []struct{ got, want string }{
		{cpuMax(50000, 100000), "50000 100000"},
		{cpuMax(-1, 100000), "max 100000"},
		{cpuMax(0, 0), "max 100000"},
		{cpuMax(20000, 0), "20000 100000"},
		{limitString(-1), "max"},
		{limitString(4096), "4096"},
		{swapMax(100, 300), "200"},
		{swapMax(100, 100), "0"},
		{swapMax(100, -1), "max"},
		{swapMax(0, 0), ""},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestResourcesValidate(t *testing.T) {
	ok := Resources{CPUShares: 1024, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 1 << 20, MemorySwapLimit: 2 << 20,
		PidsLimit: 100, HugepageLimits: []HugepageLimit{{"2MB", 0}}, Unified: map[string]string{"io.weight": "100"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid resources refused: %v", err)
	}
	tests := []struct {
		r    Resources
		want string
	}{
		{Resources{CPUQuota: -5}, "cpu_quota"},
		{Resources{CPUQuota: 500}, "minimum is 1000"},
		{Resources{CPUPeriod: 10}, "cpu_period"},
		{Resources{CPUShares: 1}, "cpu_shares"},
		{Resources{MemoryLimit: -2}, "memory_limit_in_bytes"},
		{Resources{MemoryLimit: 100, MemorySwapLimit: 50}, "below memory_limit_in_bytes"},
		{Resources{MemorySwapLimit: 50}, "needs memory_limit_in_bytes"},
		{Resources{PidsLimit: -7}, "pids"},
		{Resources{HugepageLimits: []HugepageLimit{{"huge", 1}}}, "page size"},
		{Resources{Unified: map[string]string{"../memory.max": "1"}}, "not a cgroup file name"},
		{Resources{Unified: map[string]string{"cgroup.procs": "1"}}, "cgroup core"},
	}
	for _, tt := range tests {
		if err := tt.r.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", tt.r, err, tt.want)
		}
	}
}

func TestWeightToShareUndoesShareToWeight(t *testing.T) {
	for _, shares := range []uint64{2, 102, 1024, 4096, 262144} {
		back := WeightToShare(ShareToWeight(shares))
		if ShareToWeight(back) != ShareToWeight(shares) || back > shares+27 || back+27 < shares {
			t.Errorf("shares %d -> weight %d -> shares %d", shares, ShareToWeight(shares), back)
		}
	}
}

func TestWithOverlaysSetFields(t *testing.T) {
	base := Resources{
		CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 1 << 30, PidsLimit: 100,
		HugepageLimits: []HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:        map[string]string{"memory.high": "max"},
	}
	tests := []struct {
		name   string
		update *Resources
		want   Resources
	}{
		{"nil changes nothing", nil, base},
		{"zero changes nothing", &Resources{}, base},
		{"set fields replace", &Resources{CPUShares: 1024, MemoryLimit: 2 << 30, CPUSetCPUs: "0"}, Resources{
			CPUShares: 1024, CPUQuota: 50000, CPUPeriod: 100000, CPUSetCPUs: "0", MemoryLimit: 2 << 30, PidsLimit: 100,
			HugepageLimits: base.HugepageLimits, Unified: base.Unified,
		}},
		{"unlimited is a value", &Resources{CPUQuota: -1, PidsLimit: -1}, Resources{
			CPUShares: 512, CPUQuota: -1, CPUPeriod: 100000, MemoryLimit: 1 << 30, PidsLimit: -1,
			HugepageLimits: base.HugepageLimits, Unified: base.Unified,
		}},
		{"hugepages by size, unified by key", &Resources{
			HugepageLimits: []HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 1 << 30}},
			Unified:        map[string]string{"io.weight": "50"},
		}, Resources{
			CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 1 << 30, PidsLimit: 100,
			HugepageLimits: []HugepageLimit{{PageSize: "2MB", Limit: 0}, {PageSize: "1GB", Limit: 1 << 30}},
			Unified:        map[string]string{"memory.high": "max", "io.weight": "50"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := base.With(tt.update); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("With(%+v) =\n%+v\nwant\n%+v", tt.update, got, tt.want)
			}
		})
	}
	if base.Unified["io.weight"] != "" || len(base.HugepageLimits) != 1 {
		t.Error("With changed its receiver's maps or slices")
	}
}

func TestDeviceRules(t *testing.T) {
	for _, tt := range []struct {
		rule  DeviceRule
		text  string
		valid bool
	}{
		{DeviceRule{Type: 'a', Major: -1, Minor: -1, Access: "rwm"}, "a *:* rwm", true},
		{DeviceRule{Allow: true, Type: 'c', Major: 1, Minor: 3, Access: "rwm"}, "c 1:3 rwm", true},
		{DeviceRule{Allow: true, Type: 'c', Major: 136, Minor: -1, Access: "rw"}, "c 136:* rw", true},
		{DeviceRule{Allow: true, Type: 'b', Major: -1, Minor: -1, Access: "m"}, "b *:* m", true},
		{DeviceRule{Allow: true, Type: 'x', Major: 1, Minor: 1, Access: "r"}, "x 1:1 r", false},
		{DeviceRule{Allow: true, Type: 'c', Major: 1, Minor: 1, Access: "rx"}, "c 1:1 rx", false},
		{DeviceRule{Allow: true, Type: 'c', Major: 1, Minor: 1}, "c 1:1 ", false},
	} {
		if got := tt.rule.String(); got != tt.text {
			t.Errorf("%+v is %q, want %q", tt.rule, got, tt.text)
		}
		err := (&Resources{Devices: []DeviceRule{tt.rule}}).Validate()
		if (err == nil) != tt.valid {
			t.Errorf("Validate(%q) = %v, want valid %v", tt.text, err, tt.valid)
		}
	}
}
