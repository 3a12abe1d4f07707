package server

import (
	"context"
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/sandbox"
)

// PodSandboxStatus reports a sandbox; verbose adds its configuration and
// runtime details (namespaces, infra process, cgroup, network) and the
// result of a CNI CHECK of its network, which the plain status the kubelet
// polls never pays for.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	sb, err := s.sandboxes.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st := &runtime.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       sandboxMetadata(sb),
		State:          sandboxState(sb),
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         sb.Spec.Labels,
		Annotations:    sb.Spec.Annotations,
		RuntimeHandler: sb.Spec.RuntimeHandler,
		Network:        &runtime.PodSandboxNetworkStatus{},
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{Options: &runtime.NamespaceOption{
			Network: nsMode(sb.Spec.HostNetwork, false),
			Pid:     nsMode(sb.Spec.HostPID, !sb.Spec.SharedPID),
			Ipc:     nsMode(sb.Spec.HostIPC, false),
		}}},
	}
	if u := sb.Spec.UserNS; u != nil {
		st.Linux.Namespaces.Options.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: criMappings(u.UIDs), Gids: criMappings(u.GIDs)}
	} else {
		st.Linux.Namespaces.Options.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}
	}
	if len(sb.IPs) > 0 {
		st.Network.Ip = sb.IPs[0]
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	resp := &runtime.PodSandboxStatusResponse{Status: st}
	if req.Verbose {
		info := map[string]any{
			"config": json.RawMessage(sb.Spec.Raw), "namespaces": sb.NS, "infraPid": sb.InfraPID,
			"cgroup": sb.Cgroup, "network": sb.Network, "dir": sb.Dir, "runtimeHandler": sb.Spec.RuntimeHandler,
			"networkCheck": "ok",
		}
		if err := s.sandboxes.CheckNetwork(ctx, sb); err != nil {
			info["networkCheck"] = err.Error()
		}
		raw, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(raw)}
	}
	return resp, nil
}

func sandboxMetadata(sb *sandbox.Sandbox) *runtime.PodSandboxMetadata {
	return &runtime.PodSandboxMetadata{Name: sb.Spec.Name, Namespace: sb.Spec.Namespace, Uid: sb.Spec.UID, Attempt: sb.Spec.Attempt}
}

func sandboxState(sb *sandbox.Sandbox) runtime.PodSandboxState {
	if sb.State == sandbox.Ready {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

func nsMode(host, perContainer bool) runtime.NamespaceMode {
	switch {
	case host:
		return runtime.NamespaceMode_NODE
	case perContainer:
		return runtime.NamespaceMode_CONTAINER
	}
	return runtime.NamespaceMode_POD
}

func criMappings(ms []specs.LinuxIDMapping) []*runtime.IDMapping {
	out := make([]*runtime.IDMapping, len(ms))
	for i, m := range ms {
		out[i] = &runtime.IDMapping{ContainerId: m.ContainerID, HostId: m.HostID, Length: m.Size}
	}
	return out
}
