package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists every image, or with a filter the one image it names
// (by any name or ID).
func (s *Server) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.images.Get(ref)
		if err != nil {
			return &runtime.ListImagesResponse{}, nil
		}
		return &runtime.ListImagesResponse{Images: []*runtime.Image{s.toCRIImage(img)}}, nil
	}
	imgs := s.images.List()
	out := make([]*runtime.Image, len(imgs))
	for i, img := range imgs {
		out[i] = s.toCRIImage(img)
	}
	return &runtime.ListImagesResponse{Images: out}, nil
}
