package server

import (
	"context"
	"net/netip"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// UpdateRuntimeConfig takes the node's pod CIDR from the kubelet. CNI
// plugins that allocate from it (host-local with "subnet": "usePodCidr")
// get it as a runtime config when pods are networked. An empty config
// changes nothing, as the kubelet sends one before it knows the CIDR.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	// The kubelet sends a comma-separated list on dual-stack nodes.
	for _, c := range strings.Split(cidr, ",") {
		if _, err := netip.ParsePrefix(c); err != nil {
			return nil, invalid("runtime_config.network_config.pod_cidr", "%q is not a CIDR: %v", c, err)
		}
	}
	s.mu.Lock()
	changed := s.podCIDR != cidr
	s.podCIDR = cidr
	s.mu.Unlock()
	if changed {
		klog.InfoS("Pod CIDR updated", "podCIDR", cidr)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}
