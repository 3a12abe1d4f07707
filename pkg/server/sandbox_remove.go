package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/events"
)

// RemovePodSandbox removes a sandbox and everything it made; removing an
// unknown sandbox succeeds.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	before, _ := s.sandboxes.Get(req.PodSandboxId)
	if err := s.sandboxes.Remove(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	if before != nil {
		s.events.Publish(events.Event{ContainerID: before.ID, SandboxID: before.ID, Type: events.Deleted})
	}
	return &runtime.RemovePodSandboxResponse{}, nil
}
