package server

import (
	"context"
	"errors"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// StopPodSandbox stops a sandbox's containers and detaches its network.
// It is idempotent, and stopping an unknown sandbox succeeds, as the CRI
// asks: the kubelet retries it after its own restarts.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	before, _ := s.sandboxes.Get(req.PodSandboxId)
	if err := s.sandboxes.Stop(ctx, req.PodSandboxId); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	if before != nil && before.State == sandbox.Ready {
		s.events.Publish(events.Event{ContainerID: before.ID, SandboxID: before.ID, Type: events.Stopped})
	}
	return &runtime.StopPodSandboxResponse{}, nil
}
