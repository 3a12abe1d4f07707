package server

import (
	"os"
	"path/filepath"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/image"
)

func TestImageName(t *testing.T) {
	const id = "sha256:dbe734b1a84f97de08a05f91595e7b2aa6c650dc8b64a610c4d721521550b573"
	tagged := &image.Image{ID: id, RepoTags: []string{"registry.k8s.io/e2e-test-images/agnhost:2.66.1"}}
	untagged := &image.Image{ID: id}
	tests := []struct {
		name string
		spec *runtime.ImageSpec
		img  *image.Image
		want string
	}{
		{"the kubelet: by ID, with the pod spec's name", &runtime.ImageSpec{Image: id, UserSpecifiedImage: "agnhost:2.66.1"}, tagged, "agnhost:2.66.1"},
		{"by ID alone: the first tag", &runtime.ImageSpec{Image: id}, tagged, "registry.k8s.io/e2e-test-images/agnhost:2.66.1"},
		{"by bare hex ID: the first tag", &runtime.ImageSpec{Image: id[len("sha256:"):]}, tagged, "registry.k8s.io/e2e-test-images/agnhost:2.66.1"},
		{"by ID, no tag: the ID", &runtime.ImageSpec{Image: id}, untagged, id},
		{"by name: the name", &runtime.ImageSpec{Image: "busybox"}, tagged, "busybox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := imageName(tt.spec, tt.img); got != tt.want {
				t.Errorf("imageName = %q, want %q", got, tt.want)
			}
		})
	}
}

// A bind source is resolved through its symlinks (Debian's /lib is one,
// to usr/lib), and made a directory when missing, under the symlink's
// target: kube-proxy's /lib/modules on a host without modules.
func TestResolveBindSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "usr/lib/present"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/lib", filepath.Join(dir, "lib")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		source, want string
		wantErr      bool
	}{
		{source: "usr/lib/present", want: "usr/lib/present"},
		{source: "lib/present", want: "usr/lib/present"},
		{source: "lib/modules", want: "usr/lib/modules"},
		{source: "missing/deeper", want: "missing/deeper"},
		{source: "file", want: "file"},
		{source: "file/below", wantErr: true},
	} {
		got, err := resolveBindSource(filepath.Join(dir, tc.source))
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: resolved to %s, want an error", tc.source, got)
			}
			continue
		}
		if err != nil || got != filepath.Join(dir, tc.want) {
			t.Errorf("%s: %q, %v; want %s", tc.source, got, err, tc.want)
			continue
		}
		if fi, err := os.Stat(got); err != nil {
			t.Errorf("%s: %v", tc.source, err)
		} else if tc.source != "file" && !fi.IsDir() {
			t.Errorf("%s: made %v, want a directory", tc.source, fi.Mode())
		}
	}
}
