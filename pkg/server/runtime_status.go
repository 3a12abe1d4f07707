package server

import (
	"context"
	"encoding/json"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cni"
)

// Reasons for a false condition, in the words the kubelet's other runtimes
// use, so node conditions read the same whichever runtime a node has.
const (
	reasonNetworkNotReady = "NetworkPluginNotReady"
	reasonRuntimeNotReady = "RuntimeNotReady"
)

// Status reports whether crid can run containers and whether pods can get a
// network. NetworkReady follows the CNI config dir as it is now: a
// configuration dropped in by a CNI daemonset makes the node ready on the
// kubelet's next poll, without restarting crid.
func (s *Server) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	runtimeReady := &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Status: true}
	if _, err := s.store.Schema(); err != nil {
		runtimeReady.Status = false
		runtimeReady.Reason = reasonRuntimeNotReady
		runtimeReady.Message = fmt.Sprintf("metadata store unreadable: %v", err)
	}

	networkReady := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	network, err := cni.Discover(s.cfg.Network.CNIConfigDir, s.cfg.Network.CNIPluginDirs)
	if err != nil {
		networkReady.Status = false
		networkReady.Reason = reasonNetworkNotReady
		networkReady.Message = "Network plugin returns error: " + err.Error()
	}

	resp := &runtime.StatusResponse{
		Status:          &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{runtimeReady, networkReady}},
		RuntimeHandlers: s.runtimeHandlers(),
		// Supplemental groups policy (Merge and Strict) is honoured by the
		// spec generator; the rest waits for the executor to offer it.
		Features: &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.GetVerbose() {
		resp.Info = s.statusInfo(network)
	}
	return resp, nil
}

// runtimeHandlers lists the default handler twice: by its name, and as
// "", which is how the kubelet (and critest) name the handler of a pod
// without a RuntimeClass; then runtime.handlers, all served alike.
func (s *Server) runtimeHandlers() []*runtime.RuntimeHandler {
	handlers := []*runtime.RuntimeHandler{{Name: "", Features: handlerFeatures()}}
	for _, name := range s.cfg.Runtime.HandlerNames() {
		handlers = append(handlers, &runtime.RuntimeHandler{Name: name, Features: handlerFeatures()})
	}
	return handlers
}

// handlerFeatures are what crid's one handler offers, claimed only once
// the executor honours them: recursive read-only binds are
// mount_setattr(AT_RECURSIVE), which every kernel crid runs on has (it
// needs open_tree); user namespaces need idmapped mounts of the layers'
// and volumes' file systems (a pod whose file systems cannot be idmapped
// fails at CreateContainer, naming the file system).
func handlerFeatures() *runtime.RuntimeHandlerFeatures {
	return &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: true}
}

// statusInfo is what `crictl info` shows beyond the conditions: the
// configuration in force and what crid found on the machine. Each value is
// JSON, as crictl expects.
func (s *Server) statusInfo(network *cni.Network) map[string]string {
	info := map[string]string{}
	put := func(key string, v any) {
		if raw, err := json.Marshal(v); err == nil {
			info[key] = string(raw)
		}
	}
	put("config", s.cfg)
	put("cgroupMode", s.cgroups.Mode.String())
	put("cgroupLayout", s.cgroups.String())
	put("cgroupDriver", s.cfg.Runtime.CgroupDriver)
	if network != nil {
		put("cniNetwork", map[string]string{"name": network.Name(), "file": network.File})
	}
	s.mu.Lock()
	put("podCIDR", s.podCIDR)
	s.mu.Unlock()
	return info
}
