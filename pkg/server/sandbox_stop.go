package server

import (
	"context"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// StopPodSandbox stops a sandbox's containers and detaches its network.
// It is idempotent, and stopping an unknown sandbox succeeds, as the CRI
// asks: the kubelet retries it after its own restarts.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	if err := s.stopPodSandbox(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// stopPodSandbox kills the pod's containers at once (the kubelet has
// stopped them gracefully before it stops the pod), tells plugins while
// the pod's network is still there, then stops the sandbox.
func (s *Server) stopPodSandbox(ctx context.Context, id string) error {
	sb, err := s.sandboxes.Get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx = logctx.With(ctx, "pod", sb.ID)
	var errs []error
	for _, c := range s.containers.ForSandbox(sb.ID) {
		errs = append(errs, s.stopContainer(logctx.With(ctx, "container", c.ID), c.ID, 0))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop containers of sandbox %s: %w", sb.ID, err)
	}
	if sb.State == sandbox.Ready {
		s.nri.StopPodSandbox(ctx, sb)
	}
	if err := s.sandboxes.Stop(ctx, sb.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	if sb.State == sandbox.Ready {
		s.events.Publish(events.Event{ContainerID: sb.ID, SandboxID: sb.ID, Type: events.Stopped})
	}
	return nil
}
