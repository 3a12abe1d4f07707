package server

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image"
)

// ImageStatus answers with the image, or with no image (and no error) when
// it is not there: that is how the kubelet learns it must pull.
func (s *Server) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image", "is empty: name the image")
	}
	img, err := s.images.Get(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: s.toCRIImage(img)}
	if req.GetVerbose() {
		info := map[string]any{
			"id":          img.ID,
			"repoTags":    img.RepoTags,
			"repoDigests": img.RepoDigests,
			"layers":      img.Layers,
			"pulled":      img.Pulled,
			"imageSpec":   json.RawMessage(img.Config),
		}
		raw, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(raw)}
	}
	return resp, nil
}

// toCRIImage is the CRI view of an image. The image's USER decides uid or
// username: a number is a uid, a name is a username, and a group after ':'
// is not reported.
func (s *Server) toCRIImage(img *image.Image) *runtime.Image {
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    append([]string{}, img.RepoTags...),
		RepoDigests: append([]string{}, img.RepoDigests...),
		Size:        img.Size,
		Spec:        &runtime.ImageSpec{Image: img.ID},
		Pinned:      s.images.Pinned(img),
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(img.Config, &cfg); err == nil {
		user, _, _ := strings.Cut(cfg.Config.User, ":")
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtime.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}
