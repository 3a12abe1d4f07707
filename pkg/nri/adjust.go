package nri

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
)

// errUnsupported marks an adjustment crid cannot carry out.
var errUnsupported = errors.New("crid cannot apply it")

func unsupported(field string) error {
	return fmt.Errorf("adjustment of %s: %w: %w", field, errUnsupported, errdefs.ErrFailedPrecondition)
}

// adjust applies the plugins' (merged) adjustment to a container being
// created: its spec and its limits. An adjustment crid cannot carry out
// fails the create by name instead of being dropped: the plugin asked for
// it because something depends on it.
func adjust(spec *specs.Spec, res *cgroups.Resources, a *adaptation.ContainerAdjustment) error {
	if a == nil {
		return nil
	}
	if err := refuseUnsupported(a); err != nil {
		return err
	}
	for k, v := range a.GetAnnotations() {
		if key, remove := api.IsMarkedForRemoval(k); remove {
			delete(spec.Annotations, key)
			continue
		}
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[k] = v
	}
	if err := adjustMounts(spec, a.GetMounts()); err != nil {
		return err
	}
	for _, e := range a.GetEnv() {
		key, remove := e.IsMarkedForRemoval()
		spec.Process.Env = slices.DeleteFunc(spec.Process.Env, func(kv string) bool { return strings.SplitN(kv, "=", 2)[0] == key })
		if !remove {
			spec.Process.Env = append(spec.Process.Env, e.ToOCI())
		}
	}
	if args := a.GetArgs(); len(args) > 0 {
		spec.Process.Args = slices.Clone(args)
	}
	for _, r := range a.GetRlimits() {
		if !strings.HasPrefix(r.GetType(), "RLIMIT_") {
			return fmt.Errorf("adjustment of rlimits: %q is not a limit (RLIMIT_NOFILE, RLIMIT_NPROC...): %w", r.GetType(), errdefs.ErrInvalidArgument)
		}
		spec.Process.Rlimits = slices.DeleteFunc(spec.Process.Rlimits, func(o specs.POSIXRlimit) bool { return o.Type == r.GetType() })
		spec.Process.Rlimits = append(spec.Process.Rlimits, specs.POSIXRlimit{Type: r.GetType(), Hard: r.GetHard(), Soft: r.GetSoft()})
	}
	l := a.GetLinux()
	if l == nil {
		return nil
	}
	if err := adjustDevices(spec, l.GetDevices()); err != nil {
		return err
	}
	if lr := l.GetResources(); lr != nil {
		// Device rules join the container's own, after them: they are
		// set when its cgroup is made (a resize cannot carry them).
		for _, d := range lr.GetDevices() {
			rule := specs.LinuxDeviceCgroup{Allow: d.GetAllow(), Type: d.GetType(), Access: d.GetAccess()}
			if m := d.GetMajor(); m != nil {
				v := m.GetValue()
				rule.Major = &v
			}
			if m := d.GetMinor(); m != nil {
				v := m.GetValue()
				rule.Minor = &v
			}
			if spec.Linux.Resources == nil {
				spec.Linux.Resources = &specs.LinuxResources{}
			}
			spec.Linux.Resources.Devices = append(spec.Linux.Resources.Devices, rule)
		}
		rest := proto.Clone(lr).(*adaptation.LinuxResources)
		rest.Devices = nil
		r, err := fromNRIResources(rest)
		if err != nil {
			return err
		}
		*res = res.With(r)
	}
	if o := l.GetOomScoreAdj(); o != nil {
		v, err := cgroups.ClampOOMScoreAdj(int(o.GetValue()))
		if err != nil {
			return fmt.Errorf("adjustment of oom_score_adj: %w", err)
		}
		spec.Process.OOMScoreAdj = &v
	}
	return nil
}

// refuseUnsupported names the first part of a that crid has no means to
// carry out.
func refuseUnsupported(a *adaptation.ContainerAdjustment) error {
	checks := []struct {
		field string
		set   bool
	}{
		{"hooks (crid runs no OCI hooks)", hasHooks(a.GetHooks())},
		{"CDI devices (crid has no CDI registry)", len(a.GetCDIDevices()) > 0},
	}
	if l := a.GetLinux(); l != nil {
		checks = append(checks, []struct {
			field string
			set   bool
		}{
			{"linux.cgroups_path (crid places containers itself)", l.GetCgroupsPath() != ""},
			{"linux.io_priority", given(l.GetIoPriority())},
			{"linux.seccomp_policy", given(l.GetSeccompPolicy())},
			{"linux.namespaces", len(l.GetNamespaces()) > 0},
			{"linux.sysctl", len(l.GetSysctl()) > 0},
			{"linux.net_devices", len(l.GetNetDevices()) > 0},
			{"linux.scheduler", given(l.GetScheduler())},
			{"linux.rdt", given(l.GetRdt())},
			{"linux.memory_policy", given(l.GetMemoryPolicy())},
		}...)
	}
	for _, c := range checks {
		if c.set {
			return unsupported(c.field)
		}
	}
	return nil
}

// given says whether a plugin put anything in m: the library merging the
// plugins' answers leaves empty messages where none did.
func given(m proto.Message) bool { return proto.Size(m) > 0 }

func hasHooks(h *adaptation.Hooks) bool {
	return h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer)+len(h.Poststart)+len(h.Poststop) > 0
}

// adjustMounts removes the mounts plugins mark and adds theirs; a mount
// they add replaces one at the same destination. Mounts stay ordered by
// depth, so a parent is mounted before what is mounted inside it.
func adjustMounts(spec *specs.Spec, mounts []*adaptation.Mount) error {
	if len(mounts) == 0 {
		return nil
	}
	for _, m := range mounts {
		dst, remove := m.IsMarkedForRemoval()
		dst = path.Clean(dst)
		if !path.IsAbs(dst) {
			return fmt.Errorf("adjustment of mounts: destination %q is not absolute: %w", m.GetDestination(), errdefs.ErrInvalidArgument)
		}
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(o specs.Mount) bool { return path.Clean(o.Destination) == dst })
		if !remove {
			o := m.ToOCI(nil)
			o.Destination = dst
			spec.Mounts = append(spec.Mounts, o)
		}
	}
	slices.SortStableFunc(spec.Mounts, func(a, b specs.Mount) int {
		return strings.Count(path.Clean(a.Destination), "/") - strings.Count(path.Clean(b.Destination), "/")
	})
	return nil
}

// adjustDevices removes the devices plugins mark and adds theirs, each
// allowed in the device cgroup for exactly its numbers.
func adjustDevices(spec *specs.Spec, devices []*adaptation.LinuxDevice) error {
	for _, d := range devices {
		p, remove := d.IsMarkedForRemoval()
		spec.Linux.Devices = slices.DeleteFunc(spec.Linux.Devices, func(o specs.LinuxDevice) bool { return o.Path == p })
		if remove {
			continue
		}
		if !path.IsAbs(p) || d.GetType() == "" {
			return fmt.Errorf("adjustment of linux.devices: %q needs an absolute path and a type (c, b or p): %w", p, errdefs.ErrInvalidArgument)
		}
		o := d.ToOCI()
		spec.Linux.Devices = append(spec.Linux.Devices, o)
		if spec.Linux.Resources == nil {
			spec.Linux.Resources = &specs.LinuxResources{}
		}
		major, minor := o.Major, o.Minor
		spec.Linux.Resources.Devices = append(spec.Linux.Resources.Devices,
			specs.LinuxDeviceCgroup{Allow: true, Type: o.Type, Major: &major, Minor: &minor, Access: "rwm"})
	}
	return nil
}
