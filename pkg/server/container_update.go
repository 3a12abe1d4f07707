package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// UpdateContainerResources resizes a container in place: its cgroup's
// limits change while it runs. The unified map carries what the Linux
// resources have no field for.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	c, err := s.containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State == container.Exited {
		return nil, fmt.Errorf("container %s has exited: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	r := req.GetLinux()
	if r == nil {
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	res, err := cgroupResources(r, 0)
	if err != nil {
		return nil, err
	}
	if res, err = s.nri.UpdateContainer(ctx, c, res); err != nil {
		return nil, err
	}
	if err := s.containers.UpdateResources(ctx, c.ID, res); err != nil {
		return nil, err
	}
	s.nri.PostUpdateContainer(ctx, c.ID)
	return &runtime.UpdateContainerResourcesResponse{}, nil
}
