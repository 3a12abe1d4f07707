package server

import (
	"context"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/logctx"
)

// RemovePodSandbox removes a sandbox and everything it made: stopped
// first, then its containers, then the sandbox (its monitor ends with
// it). Removing an unknown sandbox succeeds.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	sb, err := s.sandboxes.Get(req.PodSandboxId)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopPodSandbox(ctx, sb.ID); err != nil {
		return nil, err
	}
	var errs []error
	ctx = logctx.With(ctx, "pod", sb.ID)
	for _, c := range s.containers.ForSandbox(sb.ID) {
		errs = append(errs, s.removeContainer(logctx.With(ctx, "container", c.ID), c.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("remove containers of sandbox %s: %w", sb.ID, err)
	}
	if err := s.sandboxes.Remove(ctx, sb.ID); err != nil {
		return nil, err
	}
	s.nri.RemovePodSandbox(ctx, sb)
	s.events.Publish(events.Event{ContainerID: sb.ID, SandboxID: sb.ID, Type: events.Deleted})
	return &runtime.RemovePodSandboxResponse{}, nil
}
