package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/store"
)

func TestToCRIImageUserAndPinned(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := image.New(image.Options{Layout: image.Layout{Root: t.TempDir()}, Store: st,
		Pinned: []string{"registry.k8s.io/pause:3.10"}})
	if err != nil {
		t.Fatal(err)
	}
	s := New(config.Default(), st, &cgroups.Hierarchy{Mode: cgroups.Unified, Unified: "/sys/fs/cgroup"}, svc, nil, nil, nil, nil, nil)
	tests := []struct {
		user     string
		uid      int64 // -1: none
		username string
	}{
		{"", -1, ""},
		{"1002", 1002, ""},
		{"www-data", -1, "www-data"},
		{"1003:1004", 1003, ""},
		{"www-data:1004", -1, "www-data"},
		{"0", 0, ""},
	}
	for _, tt := range tests {
		cfg, _ := json.Marshal(map[string]any{"config": map[string]any{"User": tt.user}})
		got := s.toCRIImage(&image.Image{ID: "sha256:x", Config: cfg, RepoTags: []string{"docker.io/library/a:1"}})
		if (tt.uid < 0) != (got.Uid == nil) || (got.Uid != nil && got.Uid.Value != tt.uid) || got.Username != tt.username {
			t.Errorf("USER %q: uid %v username %q", tt.user, got.Uid, got.Username)
		}
		if got.Pinned {
			t.Errorf("USER %q: pinned without being listed", tt.user)
		}
		if got.Spec.GetImage() != "sha256:x" {
			t.Errorf("spec image %q", got.Spec.GetImage())
		}
	}
	pinned := s.toCRIImage(&image.Image{ID: "sha256:p", Config: []byte("{}"), RepoTags: []string{"registry.k8s.io/pause:3.10"}})
	if !pinned.Pinned {
		t.Error("a configured pinned image is not reported pinned")
	}
}

func TestImageCallsValidateAndAnswerMissingImages(t *testing.T) {
	c := serve(t, nil)
	ctx := context.Background()
	st, err := c.img.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "busybox"}})
	if err != nil || st.Image != nil {
		t.Fatalf("status of a missing image: %v, %v (want no image and no error)", st, err)
	}
	list, err := c.img.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "busybox"}}})
	if err != nil || len(list.Images) != 0 {
		t.Fatalf("filtered list: %v, %v", list, err)
	}
	if _, err := c.img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatalf("removing a missing image must succeed (CRI): %v", err)
	}
	for name, call := range map[string]func() error{
		"PullImage":   func() error { _, err := c.img.PullImage(ctx, &runtime.PullImageRequest{}); return err },
		"ImageStatus": func() error { _, err := c.img.ImageStatus(ctx, &runtime.ImageStatusRequest{}); return err },
		"RemoveImage": func() error { _, err := c.img.RemoveImage(ctx, &runtime.RemoveImageRequest{}); return err },
	} {
		if err := call(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "image.image") {
			t.Errorf("%s without an image: %v", name, err)
		}
	}
	_, err = c.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "Not A Name"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("pull of a malformed name: %v", err)
	}
}
