package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/oci/caps"
	"github.com/crid-dev/crid/pkg/oci/generate"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/validate"
)

// CreateContainer makes a container in a ready sandbox from a pulled
// image: its cgroup, writable layer, overlay root and runtime spec. It
// does not run it.
func (s *Server) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (_ *runtime.CreateContainerResponse, err error) {
	c := req.GetConfig()
	if req.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	if err := validate.Container(c); err != nil {
		return nil, err
	}
	if err := fitsInList("containers", s.containersListed(), listedSize(len(c.Metadata.Name), c.Image.Image, c.Labels, c.Annotations)); err != nil {
		return nil, err
	}
	// A plugin connecting now finds the container in its Synchronize or
	// hears of it by event.
	defer s.nri.BlockSync()()
	sb, err := s.sandboxes.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if sb.State != sandbox.Ready {
		return nil, fmt.Errorf("sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	img, err := s.images.Get(c.Image.Image)
	if err != nil {
		return nil, fmt.Errorf("image %q of container %s: %w (pull it first)", c.Image.Image, c.Metadata.Name, err)
	}
	var imgCfg v1.ConfigFile
	if err := json.Unmarshal(img.Config, &imgCfg); err != nil {
		return nil, fmt.Errorf("config of image %s: %w", img.ID, err)
	}
	logPath := ""
	if c.LogPath != "" {
		if sb.Spec.LogDirectory == "" {
			return nil, invalid("config.log_path", "%q is relative to the pod's log_directory, and the pod has none", c.LogPath)
		}
		// The directory's symlinks (an operator's /var/log on another
		// disk) are resolved now, and the result checked again: from here
		// on the log is opened refusing any symlink on its path, so one
		// planted later, or a link into /proc, is never followed.
		dir := sb.Spec.LogDirectory
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			if err := validate.LogDirectory("log_directory "+dir+" (resolved)", real); err != nil {
				return nil, err
			}
			dir = real
		}
		logPath = filepath.Join(dir, c.LogPath)
	}
	res, err := cgroupResources(c.GetLinux().GetResources(), s.cfg.Runtime.PidsLimit)
	if err != nil {
		return nil, err
	}
	var podCfg runtime.PodSandboxConfig
	json.Unmarshal(sb.Spec.Raw, &podCfg)
	raw, _ := json.Marshal(c)
	daemonCaps, err := heldCapabilities()
	if err != nil {
		return nil, err
	}
	volumes := map[int]container.ImageVolume{}
	for i, m := range c.Mounts {
		if m.GetImage().GetImage() == "" {
			continue
		}
		if !m.Readonly {
			return nil, invalid(fmt.Sprintf("config.mounts[%d].readonly", i), "an image volume must be read-only")
		}
		if sp := m.ImageSubPath; filepath.IsAbs(sp) || slices.Contains(strings.Split(sp, "/"), "..") {
			return nil, invalid(fmt.Sprintf("config.mounts[%d].image_sub_path", i), "%q must be relative, without ..", sp)
		}
		vimg, err := s.images.Get(m.Image.Image)
		if err != nil {
			return nil, fmt.Errorf("image volume %q: %w (pull it first)", m.Image.Image, err)
		}
		volumes[i] = container.ImageVolume{Image: vimg, SubPath: m.ImageSubPath}
	}
	var userns sandbox.IDMappings
	if sb.Spec.UserNS != nil {
		userns = *sb.Spec.UserNS
		if sb.NS.User == "" {
			return nil, fmt.Errorf("sandbox %s has lost its user namespace: %w", sb.ID, errdefs.ErrFailedPrecondition)
		}
	}
	params := container.CreateParams{
		SandboxID: sb.ID, SandboxCgroup: sb.Cgroup, MonitorDir: sb.MonitorDir(),
		Name: c.Metadata.Name, Attempt: c.Metadata.Attempt,
		Image: img, ImageName: imageName(c.Image, img), Labels: c.Labels, Annotations: c.Annotations,
		LogPath: logPath, Raw: raw, Resources: res,
		StopSignal: stopSignal(imgCfg.Config.StopSignal),
		Stdin:      c.Stdin, StdinOnce: c.StdinOnce, Tty: c.Tty,
		ImageVolumes: volumes,
		UserNS:       sb.NS.User,
	}
	if sb.Spec.UserNS != nil {
		// The mapping starts at container ID 0 (checked at RunPodSandbox).
		params.RootUID, params.RootGID = userns.UIDs[0].HostID, userns.GIDs[0].HostID
	}

	// Prepare mounts the root, which the spec is built against; plugins
	// adjust spec and limits; Commit makes the cgroup with them. Until
	// then nothing of the container is listed, and any failure abandons it.
	draft, err := s.containers.Prepare(ctx, params)
	if err != nil {
		return nil, err
	}
	ctx = logctx.With(ctx, "container", draft.Container.ID)
	told := false // whether plugins heard of it
	defer func() {
		if err == nil {
			return
		}
		if aerr := s.containers.Abandon(context.WithoutCancel(ctx), draft.Container.ID); aerr != nil {
			logctx.From(ctx).Error(aerr, "Abandoning a failed container")
		}
		if told {
			s.nri.RemoveContainer(context.WithoutCancel(ctx), draft.Container)
		}
	}()
	spec, err := generate.Spec(generate.Input{
		Container: c, Sandbox: &podCfg, Image: &imgCfg, Users: draft.Users,
		Rootfs: draft.Container.Rootfs(), Hostname: sb.Spec.Hostname,
		HostsPath: sb.HostsPath(), ResolvPath: sb.ResolvPath(), HostnamePath: sb.HostnamePath(), ShmPath: shmPath(sb),
		NetNS: sb.NS.Net, IPCNS: sb.NS.IPC, UTSNS: sb.NS.UTS, PIDNS: sb.NS.PID,
		HostNetwork: sb.Spec.HostNetwork, HostIPC: sb.Spec.HostIPC, HostPID: sb.Spec.HostPID,
		TerminationMessageHostPath: draft.Container.TerminationLog(),
		ImageVolumes:               draft.ImageVolumes,
		DaemonCaps:                 daemonCaps,
		StatDevice:                 statDevice,
		ResolveSource:              resolveBindSource,
		CgroupV2:                   s.cgroups.Mode == cgroups.Unified,
		UserNS:                     sb.NS.User,
		UIDMappings:                userns.UIDs,
		GIDMappings:                userns.GIDs,
	})
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	if spec.Process.OOMScoreAdj != nil {
		v, err := cgroups.ClampOOMScoreAdj(*spec.Process.OOMScoreAdj)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
		}
		spec.Process.OOMScoreAdj = &v
	}
	limits := res.DeepCopy()
	if limits == nil {
		limits = &cgroups.Resources{}
	}
	told = true
	if err := s.nri.CreateContainer(ctx, sb, draft.Container, spec, limits); err != nil {
		return nil, err
	}
	ctr, err := s.containers.Commit(ctx, draft.Container.ID, spec, limits)
	if err != nil {
		return nil, err
	}
	s.nri.PostCreateContainer(ctx, ctr)
	logctx.From(ctx).Info("Container created", "name", ctr.Name, "image", ctr.Image)
	return &runtime.CreateContainerResponse{ContainerId: ctr.ID}, nil
}

func shmPath(sb *sandbox.Sandbox) string {
	if sb.ShmMounted {
		return sb.ShmPath()
	}
	return ""
}

// statDevice describes a host device for the device cgroup and mknod.
func statDevice(p string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return specs.LinuxDevice{}, err
	}
	d := specs.LinuxDevice{Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev))}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		d.Type = "c"
	case unix.S_IFBLK:
		d.Type = "b"
	default:
		return d, fmt.Errorf("%s is not a device", p)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	d.FileMode, d.UID, d.GID = &mode, &uid, &gid
	return d, nil
}

// heldCapabilities are crid's own effective capabilities.
func heldCapabilities() ([]string, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil, err
			}
			return caps.Held(n), nil
		}
	}
	return nil, fmt.Errorf("no CapEff in /proc/self/status")
}

// stopSignal reads an image's STOPSIGNAL (SIGQUIT, QUIT or 3).
func stopSignal(s string) int {
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if n := unix.SignalNum("SIG" + name); n != 0 {
		return int(n)
	}
	return 0
}

// imageName is the name ContainerStatus reports a container's image by.
// The kubelet creates containers by image ID and puts the pod spec's name
// in user_specified_image; it then shows status.image.image as the pod's
// containerStatuses[].image, which users (and the node e2e suite, after an
// image update) compare with the name they wrote. Without that field
// (crictl, older kubelets), a request by ID gets the image's first tag, as
// containerd does; otherwise the name as asked.
func imageName(spec *runtime.ImageSpec, img *image.Image) string {
	if spec.UserSpecifiedImage != "" {
		return spec.UserSpecifiedImage
	}
	if (spec.Image == img.ID || strings.TrimPrefix(img.ID, "sha256:") == spec.Image) && len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	return spec.Image
}

// resolveBindSource resolves the symlinks of a bind mount's source, making
// it a directory first when it does not exist. The kubelet leaves a hostPath
// volume of type "" as it is, and a source that is not there to the
// runtime, which makes it a directory (as Docker did; containerd and CRI-O
// do too): kube-proxy's /lib/modules, on a host without modules, is one.
func resolveBindSource(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if !errors.Is(err, fs.ErrNotExist) {
		return real, err
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", fmt.Errorf("make the missing bind source %s: %w", p, err)
	}
	return filepath.EvalSymlinks(p)
}
