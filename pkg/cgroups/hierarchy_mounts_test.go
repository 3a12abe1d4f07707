package cgroups

import (
	"reflect"
	"strings"
	"testing"
)

// TestMountsGiveTheSameHierarchy: the cgroup lines crid hands its
// monitors describe the host as the whole mountinfo does.
func TestMountsGiveTheSameHierarchy(t *testing.T) {
	whole, err := Discover()
	if err != nil {
		t.Skipf("no cgroup hierarchy to read here: %v", err)
	}
	mounts, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(mounts), "\n") {
		if !strings.Contains(line, " - cgroup") {
			t.Errorf("not a cgroup mount: %q", line)
		}
	}
	from, err := DiscoverFrom(mounts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(whole, from) {
		t.Errorf("from the cgroup lines: %+v; from the whole mountinfo: %+v", from, whole)
	}
}
