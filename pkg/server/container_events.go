package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/events"
)

var eventTypes = map[events.Type]runtime.ContainerEventType{
	events.Created: runtime.ContainerEventType_CONTAINER_CREATED_EVENT,
	events.Started: runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
	events.Stopped: runtime.ContainerEventType_CONTAINER_STOPPED_EVENT,
	events.Deleted: runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams container and pod lifecycle events (the
// kubelet's evented PLEG) until the client leaves or crid stops. Each
// carries the pod's status and its containers' as they are when the event
// is sent; a client more than a buffer behind misses events (and is
// logged), as the kubelet relists on its own period anyway.
func (s *Server) GetContainerEvents(req *runtime.GetEventsRequest, stream runtime.RuntimeService_GetContainerEventsServer) error {
	ch, cancel := s.events.Subscribe()
	defer cancel()
	ctx := stream.Context()
	dropped := s.events.Dropped()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ch:
			if !ok {
				return nil // crid is stopping
			}
			if n := s.events.Dropped(); n != dropped {
				klog.InfoS("Container event listeners fell behind; events were dropped", "dropped", n-dropped)
				dropped = n
			}
			if err := stream.Send(s.eventResponse(ctx, e)); err != nil {
				return err
			}
		}
	}
}

func (s *Server) eventResponse(ctx context.Context, e events.Event) *runtime.ContainerEventResponse {
	resp := &runtime.ContainerEventResponse{
		ContainerId: e.ContainerID, ContainerEventType: eventTypes[e.Type], CreatedAt: e.At.UnixNano(),
	}
	// A deleted pod has no status left to report.
	if st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: e.SandboxID}); err == nil {
		resp.PodSandboxStatus = st.Status
	}
	for _, c := range s.containers.ForSandbox(e.SandboxID) {
		if !c.InCreation() { // the CRI does not see it yet
			resp.ContainersStatuses = append(resp.ContainersStatuses, containerStatus(c))
		}
	}
	return resp
}
