package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/logctx"
)

// RunPodSandbox creates a pod sandbox and answers with its ID once it is
// ready: namespaces made, network attached, files written, NRI plugins
// agreed.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (_ *runtime.RunPodSandboxResponse, err error) {
	spec, err := s.sandboxSpec(req)
	if err != nil {
		return nil, err
	}
	if err := fitsInList("pods", s.sandboxesListed(), listedSize(len(spec.Name)+len(spec.Namespace)+len(spec.UID), spec.RuntimeHandler, spec.Labels, spec.Annotations)); err != nil {
		return nil, err
	}
	// A plugin connecting now finds the pod in its Synchronize or hears
	// of it by event.
	defer s.nri.BlockSync()()
	sb, err := s.sandboxes.Prepare(ctx, spec)
	if err != nil {
		return nil, err
	}
	ctx = logctx.With(ctx, "pod", sb.ID)
	defer func() {
		if err == nil {
			return
		}
		if aerr := s.sandboxes.Abandon(context.WithoutCancel(ctx), sb.ID); aerr != nil {
			logctx.From(ctx).Error(aerr, "Abandoning a failed sandbox")
		}
	}()
	if err := s.nri.RunPodSandbox(ctx, sb); err != nil {
		return nil, err
	}
	if sb, err = s.sandboxes.Commit(ctx, sb); err != nil {
		return nil, err
	}
	// A pod's own events name it as the container, as containerd's do.
	s.events.Publish(events.Event{ContainerID: sb.ID, SandboxID: sb.ID, Type: events.Created})
	s.events.Publish(events.Event{ContainerID: sb.ID, SandboxID: sb.ID, Type: events.Started})
	return &runtime.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}
