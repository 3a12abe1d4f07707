package server

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists sandboxes, filtered by ID (or ID prefix), state
// and labels, from memory.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	var out []*runtime.PodSandbox
	for _, sb := range s.sandboxes.ListShared() {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		state := sandboxState(sb)
		if f.GetState() != nil && f.GetState().State != state {
			continue
		}
		if !labelsMatch(sb.Spec.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtime.PodSandbox{
			Id: sb.ID, Metadata: sandboxMetadata(sb), State: state, CreatedAt: sb.CreatedAt.UnixNano(),
			Labels: sb.Spec.Labels, Annotations: sb.Spec.Annotations, RuntimeHandler: sb.Spec.RuntimeHandler,
		})
	}
	return &runtime.ListPodSandboxResponse{Items: out}, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
