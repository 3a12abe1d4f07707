package server

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/container"
)

func containerState(c *container.Container) runtime.ContainerState {
	switch c.State {
	case container.Created:
		return runtime.ContainerState_CONTAINER_CREATED
	case container.Running:
		return runtime.ContainerState_CONTAINER_RUNNING
	case container.Exited:
		return runtime.ContainerState_CONTAINER_EXITED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

func containerMetadata(c *container.Container) *runtime.ContainerMetadata {
	return &runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}
}

func nanos(c *container.Container) (created, started, finished int64) {
	created = c.CreatedAt.UnixNano()
	if !c.StartedAt.IsZero() {
		started = c.StartedAt.UnixNano()
	}
	if !c.FinishedAt.IsZero() {
		finished = c.FinishedAt.UnixNano()
	}
	return
}

// ContainerStatus reports a container from memory; verbose adds its
// configuration and runtime details. The kubelet asks for it at every
// pod sync and every container event: the status is built and encoded
// once per record (wirelist), not per call.
func (s *Server) ContainerStatus(ctx context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	if req.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	c, err := s.containers.GetShared(req.ContainerId)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{}
	if err := s.keptStatuses.FillOne(resp, c, s.containers.ListShared); err != nil {
		return nil, err
	}
	if req.Verbose {
		raw, _ := json.Marshal(map[string]any{"pid": c.Pid, "bundle": c.Bundle, "cgroup": c.Cgroup, "sandboxID": c.SandboxID, "config": json.RawMessage(c.Raw)})
		resp.Info = map[string]string{"info": string(raw)}
	}
	return resp, nil
}

// containerStatus is a container's status as ContainerStatus reports it.
func containerStatus(c *container.Container) *runtime.ContainerStatus {
	created, started, finished := nanos(c)
	// Only the mounts of the stored request are reported; decoding just
	// them spares the status the rest (env, args, limits).
	var cfg struct {
		Mounts []*runtime.Mount `json:"mounts"`
	}
	json.Unmarshal(c.Raw, &cfg)
	st := &runtime.ContainerStatus{
		Id: c.ID, Metadata: containerMetadata(c), State: containerState(c),
		CreatedAt: created, StartedAt: started, FinishedAt: finished, ExitCode: c.ExitCode,
		Image: &runtime.ImageSpec{Image: c.Image}, ImageRef: c.ImageRef, ImageId: c.ImageID,
		Reason: c.Reason, Message: c.Message, Labels: c.Labels, Annotations: c.Annotations,
		LogPath: c.LogPath, Mounts: cfg.Mounts, Resources: criResources(c.Resources),
	}
	for i, m := range st.Mounts {
		if id, ok := c.ImageVolumes[i]; ok && m.Image != nil {
			m.Image.ImageRef = id
		}
	}
	// The kubelet reports the identity as the kernel holds it: the primary
	// group is one of the process's groups.
	groups := []int64{int64(c.GID)}
	for _, g := range c.Groups {
		if g != c.GID {
			groups = append(groups, int64(g))
		}
	}
	slices.Sort(groups)
	st.User = &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{Uid: int64(c.UID), Gid: int64(c.GID), SupplementalGroups: groups}}
	return st
}

// ListContainers lists containers from memory, filtered by ID (or
// prefix), state, sandbox and labels.
func (s *Server) ListContainers(ctx context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f := req.GetFilter()
	// No keep function lists every one: the kubelet's relist. A filter
	// that sets anything (a state of 0 too) encodes to some bytes.
	var keep func(*container.Container) bool
	if proto.Size(f) > 0 {
		keep = func(c *container.Container) bool {
			return (f.GetId() == "" || strings.HasPrefix(c.ID, f.GetId())) &&
				(f.GetPodSandboxId() == "" || strings.HasPrefix(c.SandboxID, f.GetPodSandboxId())) &&
				(f.GetState() == nil || f.GetState().State == containerState(c)) &&
				labelsMatch(c.Labels, f.GetLabelSelector())
		}
	}
	resp := &runtime.ListContainersResponse{}
	if err := s.listedContainers.Fill(resp, s.containers.ListShared(), keep); err != nil {
		return nil, err
	}
	return resp, nil
}

// listedContainer is a container's entry in ListContainers.
func listedContainer(c *container.Container) proto.Message {
	return &runtime.Container{
		Id: c.ID, PodSandboxId: c.SandboxID, Metadata: containerMetadata(c),
		Image: &runtime.ImageSpec{Image: c.Image}, ImageRef: c.ImageRef, ImageId: c.ImageID,
		State: containerState(c), CreatedAt: c.CreatedAt.UnixNano(), Labels: c.Labels, Annotations: c.Annotations,
	}
}
