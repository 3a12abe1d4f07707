package server

import (
	"context"
	"errors"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// StartContainer runs a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if err := s.containers.Start(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.StartContainerResponse{}, nil
}

// StopContainer stops a container: its stop signal, then SIGKILL after
// the timeout. Stopping a stopped or unknown container succeeds.
func (s *Server) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	err := s.containers.Stop(ctx, req.ContainerId, time.Duration(req.Timeout)*time.Second)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

// RemoveContainer removes a container, stopping it first if it runs.
func (s *Server) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if err := s.containers.Remove(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

// ReopenContainerLog reopens a running container's log after the kubelet
// rotated it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	if err := s.containers.ReopenLog(req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}
