package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/failpoint"
	"github.com/crid-dev/crid/pkg/ids"
	"github.com/crid-dev/crid/pkg/logctx"
)

// A sandbox is made in two steps, with the caller's work between them:
// Prepare makes everything (namespaces, network, cgroup, files) while the
// sandbox is invisible to the CRI; the caller tells NRI plugins, which may
// refuse it; Commit makes it ready and listed, or Abandon undoes it.

// Prepare creates a sandbox: reserve the name with a record of everything
// it will make (the namespaces' pins, the network, the cgroup, /dev/shm),
// then make the namespaces (and the infra process of a shared PID
// namespace), the network, the cgroup, the files and the sysctls. The plan
// is written once, before the first of them is made: every step of the
// teardown is safe to run on what was never made (a DEL with no netns, an
// unmount of nothing), so one record of the whole plan replaces one per
// step. What Prepare learns on the way (the IPs, the infra process) is
// written by Commit, with the state: a crash before it finds the plan,
// which the teardown needs alone. Any failure undoes every step made
// before it.
//
// Neither record is synced here (a fdatasync is 0.4-0.5 ms of a host
// network pod's 3-5 ms). A crash of crid keeps both: they are in the page
// cache. Only a power loss can take them, and the reboot after it ends
// all a pod is but two things: its directory, which start-up removes when
// no record names it, and its network's attachment, whose IPAM leases are
// on disk. So the plan is synced before the ADD, beside the namespaces.
// The next synced commit (a container's, a removal) syncs them too.
func (m *Manager) Prepare(ctx context.Context, spec Spec) (_ *Sandbox, err error) {
	if err := validateSysctls(spec); err != nil {
		return nil, err
	}
	s := &Sandbox{ID: ids.New(), Spec: spec.deepCopy(), State: NotReady, CreatedAt: time.Now(), Creating: true, BootID: bootID()}
	s.Dir = filepath.Join(m.sandboxesDir(), s.ID)
	if err := m.placeCgroup(s); err != nil {
		return nil, err
	}
	s.NS = plannedPins(s.Dir, s.Spec)
	s.Attached = !spec.HostNetwork // a DEL is owed from here, even if ADD fails
	s.ShmMounted = !spec.HostIPC
	unlock, err := m.records.ReserveUnsynced(s)
	if err != nil {
		return nil, err
	}
	defer unlock()
	failpoint.Hit("sandbox.run.reserved")
	ctx = logctx.With(ctx, "pod", s.ID)
	defer func() {
		if err != nil {
			m.undo(ctx, s)
		}
	}()

	if err := os.MkdirAll(s.Dir, 0o711); err != nil {
		return nil, err
	}
	failpoint.Hit("sandbox.run.dir")
	// The pod's monitor starts beside the rest, the network above all,
	// which RunPodSandbox waits on most: the pod's first StartContainer
	// then finds it up instead of starting it.
	monitorUp := m.startMonitor(ctx, s)
	defer func() {
		if merr := monitorUp(); err == nil && merr != nil {
			err = merr
		}
	}()
	// An infra process is placed in the pod's cgroup as it starts: the
	// cgroup comes first then. Otherwise it is made while the network is.
	infraFirst := spec.SharedPID || spec.UserNS != nil
	if infraFirst {
		if err := m.makeCgroup(s); err != nil {
			return nil, err
		}
	}
	if err := m.opts.Kernel.MakeNamespaces(ctx, s); err != nil {
		return nil, err
	}
	failpoint.Hit("sandbox.run.namespaces")
	// The network is the long pole (its plugins take tens of ms): it is
	// attached while the rest of the pod is made, and waited for before
	// anything that needs its addresses. Every way out waits for it too,
	// so an undo never races the ADD.
	attached := func() (*cni.Attachment, error) { return nil, nil }
	if s.Attached {
		pod := m.cniPod(s)
		done := make(chan struct{})
		var att *cni.Attachment
		var attErr error
		go func() {
			defer close(done)
			if attErr = m.records.Sync(); attErr != nil {
				return
			}
			att, attErr = m.opts.CNI.Attach(ctx, pod)
			failpoint.Hit("sandbox.run.attached")
		}()
		attached = func() (*cni.Attachment, error) { <-done; return att, attErr }
		defer attached()
	}
	if !infraFirst {
		if err := m.makeCgroup(s); err != nil {
			return nil, err
		}
	}
	failpoint.Hit("sandbox.run.cgroup")
	if s.ShmMounted {
		if err := m.opts.Kernel.MountShm(s.ShmPath(), m.opts.ShmSize); err != nil {
			return nil, err
		}
		failpoint.Hit("sandbox.run.shm")
	}
	att, err := attached()
	if err != nil {
		return nil, err
	}
	if att != nil {
		s.Network = att.Network
		for _, ip := range att.IPs {
			s.IPs = append(s.IPs, ip.String())
		}
	}
	if err := m.writeFiles(s); err != nil {
		return nil, err
	}
	failpoint.Hit("sandbox.run.files")
	if err := m.opts.Kernel.ApplySysctls(s); err != nil {
		return nil, err
	}
	if err := monitorUp(); err != nil {
		return nil, err
	}
	failpoint.Hit("sandbox.run.prepared")
	return s.DeepCopy(), nil
}

// Commit makes a sandbox Prepare made ready, recording all it is: from
// here the CRI sees it.
func (m *Manager) Commit(ctx context.Context, prepared *Sandbox) (*Sandbox, error) {
	unlock := m.records.Lock(prepared.ID)
	defer unlock()
	planned, err := m.records.Get(prepared.ID)
	if err != nil {
		return nil, err
	}
	if !planned.Creating || !prepared.Creating {
		return nil, fmt.Errorf("sandbox %s is already committed: %w", prepared.ID, errdefs.ErrFailedPrecondition)
	}
	s := prepared.DeepCopy()
	s.State, s.Creating = Ready, false
	if err := m.records.PutUnsynced(s); err != nil { // see Prepare
		return nil, err
	}
	failpoint.Hit("sandbox.run.committed")
	logctx.From(logctx.With(ctx, "pod", s.ID)).Info("Sandbox ready", "podName", s.Spec.Namespace+"/"+s.Spec.Name, "ips", s.IPs, "cgroup", s.Cgroup)
	return s, nil
}

// Abandon undoes a prepared sandbox that must not run (an NRI plugin
// refused it). What cannot be undone now stays recorded, for start-up.
func (m *Manager) Abandon(ctx context.Context, id string) error {
	unlock := m.records.Lock(id)
	defer unlock()
	s, err := m.records.Get(id)
	if err != nil {
		return nil
	}
	if !s.Creating {
		return fmt.Errorf("sandbox %s is committed: remove it: %w", s.ID, errdefs.ErrFailedPrecondition)
	}
	return m.undo(ctx, s)
}

// undo tears down a sandbox being created and forgets it, with a context
// of its own (ctx may be why the create failed). The caller holds its lock.
func (m *Manager) undo(ctx context.Context, s *Sandbox) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := m.teardown(cctx, s); err != nil {
		logctx.From(logctx.With(ctx, "pod", s.ID)).Error(err, "Undoing a failed sandbox left something; start-up will retry")
		return err
	}
	return m.forget(s)
}

func (m *Manager) cniPod(s *Sandbox) cni.Pod {
	return cni.Pod{
		ID: s.ID, Name: s.Spec.Name, Namespace: s.Spec.Namespace, UID: s.Spec.UID, NetNS: s.NS.Net,
		Ports: s.Spec.Ports, Bandwidth: s.Spec.Bandwidth, Annotations: s.Spec.Annotations,
	}
}

// placeCgroup names the pod's cgroup: the kubelet's cgroup_parent, or
// one of crid's own under the default parent. Named before anything is
// made, it is in the record before it exists.
func (m *Manager) placeCgroup(s *Sandbox) error {
	parent := s.Spec.CgroupParent
	if parent == "" {
		p, err := cgroups.Join(m.opts.DefaultCgroupParent, s.ID)
		if err != nil {
			return err
		}
		s.Cgroup, s.OwnCgroup = p, true
		return nil
	}
	p, err := cgroups.CleanPath(parent)
	if err != nil {
		return fmt.Errorf("cgroup_parent: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	s.Cgroup = p
	return nil
}

// makeCgroup makes the pod's cgroup (placeCgroup named it) with the pod's
// limits, when it is crid's own.
func (m *Manager) makeCgroup(s *Sandbox) error {
	cg, err := m.opts.Cgroups.Manager(s.Cgroup)
	if err != nil {
		return err
	}
	res := s.Spec.Resources
	if !s.OwnCgroup {
		res = nil // the kubelet's pod cgroup carries the kubelet's limits
	}
	if err := cg.Create(res); err != nil {
		return fmt.Errorf("pod cgroup %s: %w", s.Cgroup, err)
	}
	return nil
}

// MonitorDir is where the pod's monitor listens.
func (s *Sandbox) MonitorDir() string { return filepath.Join(s.Dir, "monitor") }

// startMonitor starts the pod's monitor in the background; the function
// it returns waits for it (once; later calls give the same answer).
func (m *Manager) startMonitor(ctx context.Context, s *Sandbox) func() error {
	done := make(chan error, 1)
	go func() { done <- m.opts.Monitors.Ensure(ctx, s.MonitorDir()) }()
	return sync.OnceValue(func() error { return <-done })
}

// Stop detaches the sandbox's network and ends its infra process; the
// caller has stopped its containers. The namespaces stay pinned until
// Remove, so a status call after Stop still finds them. Stopping a
// stopped sandbox succeeds.
func (m *Manager) Stop(ctx context.Context, id string) error {
	s, err := m.records.Get(id)
	if err != nil {
		return err
	}
	unlock := m.records.Lock(s.ID)
	defer unlock()
	if s, err = m.records.Get(s.ID); err != nil {
		return err
	}
	detached := false
	if s.Attached {
		if err := m.opts.CNI.Detach(ctx, m.cniPod(s)); err != nil {
			return fmt.Errorf("sandbox %s: %w", s.ID, err)
		}
		failpoint.Hit("sandbox.stop.detached")
		s.Attached, detached = false, true
	}
	if err := m.opts.Kernel.KillInfra(ctx, s); err != nil {
		return err
	}
	failpoint.Hit("sandbox.stop.infra")
	wasReady := s.State == Ready
	if !wasReady && !detached {
		// Stopped already (RemovePodSandbox after StopPodSandbox, a
		// retry): the record says so, and a write is an fsync.
		return nil
	}
	s.State = NotReady
	if err := m.records.Put(s); err != nil {
		return err
	}
	if wasReady {
		logctx.From(logctx.With(ctx, "pod", s.ID)).Info("Sandbox stopped", "podName", s.Spec.Namespace+"/"+s.Spec.Name)
	}
	return nil
}

// Remove stops the sandbox if it runs and removes everything it made; the
// caller has removed its containers. Removing a removed sandbox succeeds.
func (m *Manager) Remove(ctx context.Context, id string) error {
	s, err := m.records.Get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// A concurrent removal may finish first: the sandbox is removed
	// either way, which is what the CRI asks of every caller.
	if err := m.Stop(ctx, s.ID); errors.Is(err, errdefs.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	unlock := m.records.Lock(s.ID)
	defer unlock()
	if s, err = m.records.Get(s.ID); err != nil {
		return nil
	}
	failpoint.Hit("sandbox.remove.stopped")
	if err := m.teardown(ctx, s); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", s.ID, err)
	}
	failpoint.Hit("sandbox.remove.torn-down")
	if err := m.forget(s); err != nil {
		return err
	}
	logctx.From(logctx.With(ctx, "pod", s.ID)).Info("Sandbox removed", "podName", s.Spec.Namespace+"/"+s.Spec.Name)
	return nil
}

// teardown undoes every step a sandbox's record says was made, in reverse;
// each step is safe to repeat.
func (m *Manager) teardown(ctx context.Context, s *Sandbox) error {
	var errs []error
	// The pod's monitor ends here, whether the pod ran containers (Remove
	// removed them first) or failed before any.
	errs = append(errs, m.opts.Monitors.Shutdown(ctx, s.MonitorDir()))
	failpoint.Hit("sandbox.teardown.monitor")
	if s.Attached {
		errs = append(errs, m.opts.CNI.Detach(ctx, m.cniPod(s)))
		failpoint.Hit("sandbox.teardown.detached")
	}
	if s.ShmMounted {
		errs = append(errs, m.opts.Kernel.UnmountShm(s.ShmPath()))
	}
	errs = append(errs, m.opts.Kernel.KillInfra(ctx, s))
	errs = append(errs, m.opts.Kernel.Unpin(s.NS))
	failpoint.Hit("sandbox.teardown.unpinned")
	if s.Cgroup != "" {
		if s.Spec.SharedPID {
			if cg, err := m.opts.Cgroups.Manager(s.infraCgroup()); err == nil {
				errs = append(errs, cg.Destroy(ctx))
			}
		}
		if s.OwnCgroup {
			if cg, err := m.opts.Cgroups.Manager(s.Cgroup); err == nil {
				errs = append(errs, cg.Destroy(ctx))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return m.opts.Kernel.RemoveDir(s.Dir)
}
