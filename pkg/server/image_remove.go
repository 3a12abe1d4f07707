package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveImage removes an image with all its names, and frees the layers
// nothing else uses. Removing an image that is not there succeeds, as the
// CRI asks, so the kubelet's retries are harmless.
func (s *Server) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image", "is empty: name the image to remove")
	}
	if err := s.images.Remove(ctx, ref); err != nil {
		return nil, err
	}
	return &runtime.RemoveImageResponse{}, nil
}
