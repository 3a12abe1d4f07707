package server

import (
	"context"
	"errors"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// StartContainer runs a created container, once NRI plugins let it.
func (s *Server) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	c, err := s.containers.Get(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State == container.Created {
		if err := s.nri.StartContainer(ctx, c); err != nil {
			// A container a plugin refused can never start: it ends as
			// a failed start does.
			if ferr := s.containers.FailStart(ctx, c.ID, err); ferr != nil {
				return nil, errors.Join(err, ferr)
			}
			s.nri.StopContainer(ctx, c)
			return nil, err
		}
	}
	started, err := s.containers.Start(ctx, c.ID)
	if err != nil {
		if now, gerr := s.containers.Get(c.ID); gerr == nil && now.State == container.Exited {
			s.nri.StopContainer(ctx, now)
		}
		return nil, err
	}
	s.nri.PostStartContainer(ctx, started)
	return &runtime.StartContainerResponse{}, nil
}

// StopContainer stops a container: its stop signal, then SIGKILL after
// the timeout. Stopping a stopped or unknown container succeeds.
func (s *Server) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if err := s.stopContainer(ctx, req.ContainerId, time.Duration(req.Timeout)*time.Second); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

// stopContainer stops a container and tells plugins of its end (unless
// told already); one that is gone is not an error.
func (s *Server) stopContainer(ctx context.Context, id string, timeout time.Duration) error {
	err := s.containers.Stop(ctx, id, timeout)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c, err := s.containers.Get(id); err == nil {
		s.nri.StopContainer(ctx, c)
	}
	return nil
}

// RemoveContainer removes a container, stopping it first if it runs.
func (s *Server) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if err := s.removeContainer(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

// removeContainer stops and removes a container, plugins told of its end
// before they hear of its removal.
func (s *Server) removeContainer(ctx context.Context, id string) error {
	c, err := s.containers.Get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		// One still being created is its create's to undo; one gone is
		// removed.
		return s.containers.Remove(ctx, id)
	}
	if err != nil {
		return err
	}
	if err := s.stopContainer(ctx, c.ID, 0); err != nil {
		return err
	}
	if err := s.containers.Remove(ctx, c.ID); err != nil {
		return err
	}
	s.nri.RemoveContainer(ctx, c)
	return nil
}

// ReopenContainerLog reopens a running container's log after the kubelet
// rotated it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	if err := s.containers.ReopenLog(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}
