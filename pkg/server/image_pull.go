package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/image"
)

// PullImage pulls an image and answers with its ID, which the kubelet
// passes back as the image of CreateContainer.
func (s *Server) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	name := req.GetImage().GetImage()
	if name == "" {
		return nil, invalid("image.image", "is empty: name the image to pull")
	}
	a := req.GetAuth()
	img, err := s.images.Pull(ctx, name, image.Auth{
		Username: a.GetUsername(), Password: a.GetPassword(), Auth: a.GetAuth(),
		IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken(),
	})
	if err != nil {
		return nil, err
	}
	return &runtime.PullImageResponse{ImageRef: img.ID}, nil
}
