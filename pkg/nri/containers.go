package nri

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/sandbox"
)

// CreateContainer asks the plugins about a container being made (in
// pod) and applies what they answer: the adjustment to its spec and
// limits, the resizing of other containers, the eviction of others. The
// container is prepared, not committed: nothing of it is listed yet.
func (h *Host) CreateContainer(ctx context.Context, pod *sandbox.Sandbox, c *container.Container, spec *specs.Spec, res *cgroups.Resources) error {
	if !h.active() {
		return nil
	}
	rpl, err := h.nri.CreateContainer(ctx, &adaptation.CreateContainerRequest{
		Pod: podSandbox(pod), Container: containerInfo(c, spec, res),
	})
	if err != nil {
		return refused("CreateContainer", err)
	}
	if err := adjust(spec, res, rpl.GetAdjust()); err != nil {
		return fmt.Errorf("apply the NRI plugins' adjustment to container %s: %w", c.ID, err)
	}
	if _, err := h.apply(ctx, rpl.GetUpdate(), c.ID); err != nil {
		return fmt.Errorf("NRI plugins' updates at the creation of container %s: %w", c.ID, err)
	}
	h.evict(ctx, rpl.GetEvict())
	return nil
}

// PostCreateContainer tells plugins a container was made.
func (h *Host) PostCreateContainer(ctx context.Context, c *container.Container) {
	if !h.active() {
		return
	}
	err := h.nri.PostCreateContainer(ctx, &adaptation.PostCreateContainerRequest{Pod: h.pod(c), Container: h.describe(c)})
	logFailure(ctx, err, "PostCreateContainer", c)
}

// StartContainer asks the plugins whether a container may start.
func (h *Host) StartContainer(ctx context.Context, c *container.Container) error {
	if !h.active() {
		return nil
	}
	err := h.nri.StartContainer(ctx, &adaptation.StartContainerRequest{Pod: h.pod(c), Container: h.describe(c)})
	if err != nil {
		return refused("StartContainer", err)
	}
	return nil
}

// PostStartContainer tells plugins a container started.
func (h *Host) PostStartContainer(ctx context.Context, c *container.Container) {
	if !h.active() {
		return
	}
	err := h.nri.PostStartContainer(ctx, &adaptation.PostStartContainerRequest{Pod: h.pod(c), Container: h.describe(c)})
	logFailure(ctx, err, "PostStartContainer", c)
}

// StopContainer tells plugins a container has ended (by itself, stopped,
// or failed to start): they may resize the others into what it freed.
// Each container's end is told once, whoever calls first: the exit
// watcher (see watchExits), or the server before a removal. A later
// caller waits until the first has told it, so a plugin hears of the
// stop before the removal that follows.
func (h *Host) StopContainer(ctx context.Context, c *container.Container) {
	if !h.on() {
		return
	}
	told, first := h.claimStop(c.ID)
	if !first {
		select {
		case <-told:
		case <-ctx.Done():
		}
		return
	}
	defer close(told)
	h.tellStop(ctx, c)
}

// stopExited tells plugins of the end of a container that exited by
// itself, unless it is told already or gone: the exit's event may come
// after the container's removal, which told the stop first.
func (h *Host) stopExited(ctx context.Context, id string) {
	told, first := h.claimStop(id)
	if !first {
		return
	}
	defer close(told)
	c, err := h.containers.Get(id)
	if err != nil {
		h.forgetStop(id)
		return
	}
	h.tellStop(ctx, c)
}

// tellStop sends StopContainer; the caller claimed it.
func (h *Host) tellStop(ctx context.Context, c *container.Container) {
	if !h.active() {
		return
	}
	rpl, err := h.nri.StopContainer(ctx, &adaptation.StopContainerRequest{Pod: h.pod(c), Container: h.describe(c)})
	if err != nil {
		logFailure(ctx, err, "StopContainer", c)
		return
	}
	if _, err := h.apply(ctx, rpl.GetUpdate(), c.ID); err != nil {
		logctx.From(logctx.With(ctx, "pod", c.SandboxID, "container", c.ID)).Error(err, "NRI plugins' updates after a container's stop failed")
	}
}

// RemoveContainer tells plugins a container is gone (removed, or a
// create they saw failed).
func (h *Host) RemoveContainer(ctx context.Context, c *container.Container) {
	if !h.on() {
		return
	}
	h.forgetStop(c.ID)
	if !h.active() {
		return
	}
	err := h.nri.RemoveContainer(ctx, &adaptation.RemoveContainerRequest{Pod: h.pod(c), Container: h.describe(c)})
	logFailure(ctx, err, "RemoveContainer", c)
}

// UpdateContainer asks the plugins about a resize the kubelet asked for
// and answers with the limits to apply to c: the plugins' where they
// changed them. Resizes they ask of other containers are applied here.
func (h *Host) UpdateContainer(ctx context.Context, c *container.Container, res *cgroups.Resources) (*cgroups.Resources, error) {
	if !h.active() {
		return res, nil
	}
	rpl, err := h.nri.UpdateContainer(ctx, &adaptation.UpdateContainerRequest{
		Pod: h.pod(c), Container: h.describe(c), LinuxResources: nriResources(res),
	})
	if err != nil {
		return nil, refused("UpdateContainer", err)
	}
	out := res
	var others []*adaptation.ContainerUpdate
	for _, u := range rpl.GetUpdate() {
		if u == nil {
			continue // the library's slot for c, when no plugin changed it
		}
		if u.GetContainerId() != c.ID {
			others = append(others, u)
			continue
		}
		r, err := fromNRIResources(u.GetLinux().GetResources())
		if err != nil {
			return nil, fmt.Errorf("NRI plugins' resources for container %s: %w", c.ID, err)
		}
		merged := res.With(r)
		out = &merged
	}
	if _, err := h.apply(ctx, others, c.ID); err != nil {
		return nil, fmt.Errorf("NRI plugins' updates with the resize of container %s: %w", c.ID, err)
	}
	h.evict(ctx, rpl.GetEvict())
	return out, nil
}

// PostUpdateContainer tells plugins a resize is done.
func (h *Host) PostUpdateContainer(ctx context.Context, id string) {
	if !h.active() {
		return
	}
	c, err := h.containers.Get(id)
	if err != nil {
		return
	}
	err = h.nri.PostUpdateContainer(ctx, &adaptation.PostUpdateContainerRequest{Pod: h.pod(c), Container: h.describe(c)})
	logFailure(ctx, err, "PostUpdateContainer", c)
}

// synchronize hands a newly connected plugin every pod and container the
// node has (creations wait meanwhile: BlockSync), and applies the updates
// it answers with.
func (h *Host) synchronize(ctx context.Context, sync adaptation.SyncCB) error {
	// From now on a plugin may be in the library's list any moment (it
	// says how many once it has added it): events are built again.
	h.plugins.CompareAndSwap(0, 1)
	var pods []*adaptation.PodSandbox
	for _, s := range h.sandboxes.List() {
		pods = append(pods, podSandbox(s))
	}
	var ctrs []*adaptation.Container
	for _, c := range h.containers.List() {
		ctrs = append(ctrs, h.describe(c))
	}
	updates, err := sync(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	_, err = h.apply(ctx, updates, "")
	return err
}

// updateFromPlugins carries out resizes a plugin asks for on its own, and
// answers with those that failed.
func (h *Host) updateFromPlugins(ctx context.Context, updates []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
	return h.apply(ctx, updates, "")
}

// apply resizes containers as plugins asked, except self (a container
// being created takes its limits from its adjustment). It answers with the
// updates that failed; failures not marked ignorable are also an error.
func (h *Host) apply(ctx context.Context, updates []*adaptation.ContainerUpdate, self string) ([]*adaptation.ContainerUpdate, error) {
	var failed []*adaptation.ContainerUpdate
	var errs []error
	for _, u := range updates {
		if u == nil || u.GetContainerId() == self {
			continue
		}
		res, err := fromNRIResources(u.GetLinux().GetResources())
		if err == nil {
			err = h.containers.UpdateResources(ctx, u.GetContainerId(), res)
		}
		if err == nil {
			continue
		}
		failed = append(failed, u)
		if !u.GetIgnoreFailure() {
			errs = append(errs, fmt.Errorf("container %s: %w", u.GetContainerId(), err))
		}
	}
	return failed, errors.Join(errs...)
}

// evict stops the containers plugins want gone, killing them at once.
func (h *Host) evict(ctx context.Context, evictions []*adaptation.ContainerEviction) {
	for _, e := range evictions {
		log := logctx.From(logctx.With(ctx, "container", e.GetContainerId()))
		log.Info("Stopping a container an NRI plugin evicted", "reason", e.GetReason())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := h.containers.Stop(sctx, e.GetContainerId(), 0); err != nil {
			log.Error(err, "Stopping an evicted container failed")
		}
		cancel()
	}
}

func logFailure(ctx context.Context, err error, event string, c *container.Container) {
	if err != nil {
		logctx.From(logctx.With(ctx, "pod", c.SandboxID, "container", c.ID)).Error(err, "NRI plugins failed an event", "event", event)
	}
}
