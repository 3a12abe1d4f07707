package server

import (
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
