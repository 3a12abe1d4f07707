package executor

import (
	"os"
	"reflect"
	"testing"

	"github.com/crid-dev/crid/pkg/cgroups"
)

// TestOwnCgroupsFromTheCgroupLines: the init finds the same hierarchies
// in the cgroup lines the monitor passes as in the host's whole
// mountinfo.
func TestOwnCgroupsFromTheCgroupLines(t *testing.T) {
	whole, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := cgroups.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseOwnCgroups(whole, own)
	if err != nil {
		t.Skipf("no cgroup v1 hierarchy here: %v", err)
	}
	got, err := parseOwnCgroups([]byte(lines), own)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("from the cgroup lines: %+v; from the whole mountinfo: %+v", got, want)
	}
}
