package cgroups

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDetectMode(t *testing.T) {
	tests := []struct {
		name    string
		fs      map[string]int64
		want    Mode
		wantErr bool
	}{
		{"unified", map[string]int64{"/cg": unix.CGROUP2_SUPER_MAGIC}, Unified, false},
		{"hybrid", map[string]int64{"/cg": unix.TMPFS_MAGIC, "/cg/unified": unix.CGROUP2_SUPER_MAGIC}, Hybrid, false},
		{"legacy", map[string]int64{"/cg": unix.TMPFS_MAGIC}, Legacy, false},
		{"legacy with a tmpfs at unified", map[string]int64{"/cg": unix.TMPFS_MAGIC, "/cg/unified": unix.TMPFS_MAGIC}, Legacy, false},
		{"not cgroups", map[string]int64{"/cg": unix.EXT4_SUPER_MAGIC}, 0, true},
		{"missing", map[string]int64{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := detectMode("/cg", func(p string) (int64, error) {
				if v, ok := tt.fs[p]; ok {
					return v, nil
				}
				return 0, errors.New("no such file")
			})
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
