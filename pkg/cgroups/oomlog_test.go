package cgroups

import "testing"

func TestParseOOMKillRecord(t *testing.T) {
	tests := []struct {
		record string
		want   *OOMVictim
	}{
		{"6,1532,123456789,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/crid/p1/crid-c1,task_memcg=/crid/p1/crid-c1,task=sh,pid=12,uid=0\n",
			&OOMVictim{Pid: 12, Comm: "sh", LimitCgroup: "/crid/p1/crid-c1", TaskCgroup: "/crid/p1/crid-c1"}},
		// The pod's limit, hit by a container's process.
		{"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod1,task_memcg=/kubepods/burstable/pod1/c1,task=python3,pid=4242,uid=1000",
			&OOMVictim{Pid: 4242, Comm: "python3", LimitCgroup: "/kubepods/burstable/pod1", TaskCgroup: "/kubepods/burstable/pod1/c1"}},
		{"6,1533,123456790,-;Memory cgroup out of memory: Killed process 12 (sh) total-vm:4kB", nil},
		{"6,1;oom-kill:constraint=CONSTRAINT_NONE", nil}, // no pid
		{"", nil},
	}
	for _, tt := range tests {
		got, ok := ParseOOMKillRecord(tt.record)
		if tt.want == nil {
			if ok {
				t.Errorf("%q parsed as %+v", tt.record, got)
			}
			continue
		}
		if !ok || *got != *tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.record, got, ok, tt.want)
		}
	}
}

func TestUnder(t *testing.T) {
	for _, tt := range []struct {
		p, cg string
		want  bool
	}{
		{"/a/b", "/a/b", true}, {"/a/b/c", "/a/b", true}, {"/a/bc", "/a/b", false}, {"/a", "/a/b", false}, {"/x", "/", true},
	} {
		if got := under(tt.p, tt.cg); got != tt.want {
			t.Errorf("under(%q, %q) = %v", tt.p, tt.cg, got)
		}
	}
}
