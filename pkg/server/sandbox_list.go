package server

import (
	"context"
	"strings"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/sandbox"
)

// ListPodSandbox lists sandboxes, filtered by ID (or ID prefix), state
// and labels, from memory.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	// No keep function lists every one: the kubelet's relist. A filter
	// that sets anything (a state of 0 too) encodes to some bytes.
	var keep func(*sandbox.Sandbox) bool
	if proto.Size(f) > 0 {
		keep = func(sb *sandbox.Sandbox) bool {
			return (f.GetId() == "" || strings.HasPrefix(sb.ID, f.GetId())) &&
				(f.GetState() == nil || f.GetState().State == sandboxState(sb)) &&
				labelsMatch(sb.Spec.Labels, f.GetLabelSelector())
		}
	}
	resp := &runtime.ListPodSandboxResponse{}
	if err := s.listedSandboxes.Fill(resp, s.sandboxes.ListShared(), keep); err != nil {
		return nil, err
	}
	return resp, nil
}

// listedSandbox is a pod's entry in ListPodSandbox.
func listedSandbox(sb *sandbox.Sandbox) proto.Message {
	return &runtime.PodSandbox{
		Id: sb.ID, Metadata: sandboxMetadata(sb), State: sandboxState(sb), CreatedAt: sb.CreatedAt.UnixNano(),
		Labels: sb.Spec.Labels, Annotations: sb.Spec.Annotations, RuntimeHandler: sb.Spec.RuntimeHandler,
	}
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
