package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// The kubelet's HugepageLimits on a host with and without the hugetlb
// controller, on v1 (not mounted) and v2 (not enabled: no file).
func TestHugepageLimitsWhereTheControllerIsMissing(t *testing.T) {
	kubelet := []HugepageLimit{{"2MB", 0}, {"1GB", 0}}
	asked := []HugepageLimit{{"2MB", 4 << 20}}
	for _, tc := range []struct {
		name     string
		have     bool
		tolerate bool
		limits   []HugepageLimit
		refused  bool
		written  string // the 2MB file's content, "" for untouched
	}{
		{"the kubelet's zeros, no controller", false, false, kubelet, false, ""},
		{"a pod's limit, no controller", false, false, asked, true, ""},
		{"a pod's limit, no controller, tolerated", false, true, asked, false, ""},
		{"the kubelet's zeros, with the controller", true, false, kubelet, false, "0"},
		{"a pod's limit, with the controller", true, false, asked, false, "4194304"},
	} {
		for _, version := range []string{"v1", "v2"} {
			t.Run(version+": "+tc.name, func(t *testing.T) {
				var c Manager
				var file string
				switch version {
				case "v1":
					mounts := map[string]string{"memory": fakeDir(t, nil)}
					os.Mkdir(filepath.Join(mounts["memory"], "pod"), 0o755)
					if tc.have {
						mounts["hugetlb"] = fakeDir(t, nil)
						d := filepath.Join(mounts["hugetlb"], "pod")
						os.Mkdir(d, 0o755)
						file = filepath.Join(d, "hugetlb.2MB.limit_in_bytes")
						os.WriteFile(file, nil, 0o644)
						os.WriteFile(filepath.Join(d, "hugetlb.1GB.limit_in_bytes"), nil, 0o644)
					}
					c = &v1{mounts: mounts, path: "/pod", mode: Hybrid, tolerateHugetlb: tc.tolerate}
				case "v2":
					root := fakeDir(t, nil)
					d := filepath.Join(root, "pod")
					os.Mkdir(d, 0o755)
					if tc.have {
						file = filepath.Join(d, "hugetlb.2MB.max")
						os.WriteFile(file, nil, 0o644)
						os.WriteFile(filepath.Join(d, "hugetlb.1GB.max"), nil, 0o644)
					}
					c = &v2{root: root, path: "/pod", tolerateHugetlb: tc.tolerate}
				}
				err := c.Update(&Resources{HugepageLimits: tc.limits})
				if tc.refused != (err != nil) {
					t.Fatalf("refused: %v, want %v", err, tc.refused)
				}
				if err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Errorf("%v is not a FailedPrecondition", err)
				}
				if file != "" {
					if got, _ := os.ReadFile(file); string(got) != tc.written {
						t.Errorf("2MB limit file holds %q, want %q", got, tc.written)
					}
				}
			})
		}
	}
}

func TestUnifiedKeysTheHostLacks(t *testing.T) {
	root := fakeDir(t, nil)
	os.Mkdir(filepath.Join(root, "pod"), 0o755)
	c := &v2{root: root, path: "/pod"}
	// The kubelet's memory.high "max" limits nothing: taken without a file.
	if err := c.Update(&Resources{Unified: map[string]string{"memory.high": "max"}}); err != nil {
		t.Errorf("memory.high=max without its file: %v", err)
	}
	// A limit that asks for something cannot be dropped.
	err := c.Update(&Resources{Unified: map[string]string{"memory.high": "1048576"}})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("memory.high=1048576 without its file: %v, want FailedPrecondition", err)
	}
}
