package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/version"
)

const (
	runtimeName = "crid"
	// apiVersion is the CRI version crid serves. Only v1 exists for it.
	apiVersion = "v1"
	// kubeAPIVersion is the legacy "version" field: the kubelet ignores its
	// value, and every runtime answers 0.1.0.
	kubeAPIVersion = "0.1.0"
)

// Version answers any requested API version with the one crid serves: the
// kubelet reads the answer and checks RuntimeApiVersion itself.
func (s *Server) Version(ctx context.Context, req *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: apiVersion,
	}, nil
}
