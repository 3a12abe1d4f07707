package reference

import (
	"errors"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestParse(t *testing.T) {
	const d = "sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf"
	tests := []struct{ in, want string }{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1"},
		{"me/app:v1", "docker.io/me/app:v1"},
		{"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
		{"localhost:5000/a/b", "localhost:5000/a/b:latest"},
		{"127.0.0.1:5000/x/y:t", "127.0.0.1:5000/x/y:t"},
		{"gcr.io/p/i@" + d, "gcr.io/p/i@" + d},
		{"gcr.io/p/i:tag@" + d, "gcr.io/p/i@" + d},
	}
	for _, tt := range tests {
		n, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if n.String() != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.in, n, tt.want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a b", "busybox@sha256:short", "x:1:2", "/abs"} {
		if _, err := Parse(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Parse(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}
