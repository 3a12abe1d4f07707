package container

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/failpoint"
	"github.com/crid-dev/crid/pkg/ids"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/oci/generate"
	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// A container is made in two steps, with the caller's work between them:
// Prepare reserves the name, records the container and mounts its root;
// the caller builds the runtime spec against that root (the image's
// users are read from it) and lets NRI plugins adjust spec and limits;
// Commit makes the cgroup with the final limits and writes the bundle.
// Until Commit the container is invisible to the CRI; Abandon undoes a
// prepared container whose create failed.

// ImageVolume is an image mounted read-only into a container.
type ImageVolume struct {
	Image   *image.Image
	SubPath string
}

// CreateParams is what a container is made from.
type CreateParams struct {
	SandboxID, SandboxCgroup, MonitorDir string
	Name                                 string
	Attempt                              uint32
	Image                                *image.Image
	ImageName                            string
	Labels, Annotations                  map[string]string
	LogPath                              string
	Raw                                  json.RawMessage
	// Resources are the limits asked for; Commit applies the final ones.
	Resources             *cgroups.Resources
	StopSignal            int
	Stdin, StdinOnce, Tty bool
	// ImageVolumes are the images the request mounts, by mount index.
	ImageVolumes map[int]ImageVolume
	// UserNS is the pod's user namespace, when it has one, and Root the
	// host IDs its root maps to: the root filesystem is made theirs.
	UserNS           string
	RootUID, RootGID uint32
}

// Draft is a prepared container: what its spec is built from.
type Draft struct {
	Container *Container
	// Users are the image's /etc/passwd and /etc/group, read in the root.
	Users generate.Users
	// ImageVolumes are the host paths of the mounted image volumes (their
	// sub-paths resolved), by mount index.
	ImageVolumes map[int]string
}

// Prepare records a container and makes its writable layer, root
// filesystem and image volumes, each named in the record before it is
// made; a failure undoes every step.
func (m *Manager) Prepare(ctx context.Context, p CreateParams) (_ *Draft, err error) {
	c := &Container{
		ID: ids.New(), SandboxID: p.SandboxID, Name: p.Name, Attempt: p.Attempt,
		Image: p.ImageName, ImageID: p.Image.ID, ImageRef: p.Image.ID, Labels: p.Labels, Annotations: p.Annotations,
		LogPath: p.LogPath, Raw: p.Raw, MonitorDir: p.MonitorDir, StopSignal: p.StopSignal,
		Stdin: p.Stdin, StdinOnce: p.StdinOnce, Tty: p.Tty,
		State: Created, Creating: true, CreatedAt: time.Now(),
		Resources: p.Resources.DeepCopy(),
		// The root and image volumes are named mounted from the first
		// record: unmounting what is not mounted is harmless.
		Mounted: true,
	}
	if len(p.Image.RepoDigests) > 0 {
		c.ImageRef = p.Image.RepoDigests[0]
	}
	for _, l := range p.Image.Layers {
		c.ChainIDs = append(c.ChainIDs, l.ChainID)
	}
	c.ImageVolumes = map[int]string{}
	for i, v := range p.ImageVolumes {
		c.ImageVolumes[i] = v.Image.ID
		for _, l := range v.Image.Layers {
			c.ChainIDs = append(c.ChainIDs, l.ChainID)
		}
	}
	c.Bundle = filepath.Join(m.bundlesDir(), c.ID)
	c.Layer = filepath.Join(m.layersDir(), c.ID)
	if c.Cgroup, err = cgroups.Join(p.SandboxCgroup, "crid-"+c.ID); err != nil {
		return nil, err
	}

	m.opts.Layers.Hold(c.ID, c.ChainIDs)
	unlock, err := m.records.Reserve(c)
	if err != nil {
		m.opts.Layers.Release(c.ID)
		return nil, err
	}
	defer unlock()
	ctx = withIDs(ctx, c)
	defer func() {
		if err != nil {
			m.undo(ctx, c)
		}
	}()
	failpoint.Hit("container.create.reserved")

	upper, work := filepath.Join(c.Layer, "upper"), filepath.Join(c.Layer, "work")
	for _, d := range []string{upper, work, c.Rootfs()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if p.UserNS != "" {
		// The root directory comes from upper: the container's root owns it.
		if err := os.Chown(upper, int(p.RootUID), int(p.RootGID)); err != nil {
			return nil, err
		}
	}
	if err := m.opts.RootFS.Mount(c.Rootfs(), m.opts.Layers.LayerDirs(p.Image), upper, work, p.UserNS); err != nil {
		return nil, err
	}
	failpoint.Hit("container.create.rootfs")
	users := generate.ParseUsers(readInRoot(c.Rootfs(), "/etc/passwd"), readInRoot(c.Rootfs(), "/etc/group"))
	if err := os.WriteFile(c.TerminationLog(), nil, 0o644); err != nil {
		return nil, err
	}
	volumes := map[int]string{}
	for i, v := range p.ImageVolumes {
		dir := c.imageVolumeDir(i)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := m.opts.RootFS.Mount(dir, m.opts.Layers.LayerDirs(v.Image), "", "", ""); err != nil {
			return nil, fmt.Errorf("image volume %d: %w", i, err)
		}
		src, err := subPathIn(dir, v.SubPath)
		if err != nil {
			return nil, fmt.Errorf("mounts[%d].image_sub_path %q: %v: %w", i, v.SubPath, err, errdefs.ErrInvalidArgument)
		}
		volumes[i] = src
	}
	failpoint.Hit("container.create.prepared")
	return &Draft{Container: c.DeepCopy(), Users: users, ImageVolumes: volumes}, nil
}

// Commit finishes a prepared container: spec and res are final (NRI
// plugins have adjusted them). Its cgroup is made with res, its bundle
// written, and from here the CRI sees it. On an error the caller
// abandons the container.
func (m *Manager) Commit(ctx context.Context, id string, spec *specs.Spec, res *cgroups.Resources) (*Container, error) {
	unlock := m.records.Lock(id)
	defer unlock()
	c, err := m.records.Get(id)
	if err != nil {
		return nil, err
	}
	if !c.Creating {
		return nil, fmt.Errorf("container %s is already committed: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	spec.Linux.CgroupsPath = c.Cgroup
	c.UID, c.GID, c.Groups = spec.Process.User.UID, spec.Process.User.GID, spec.Process.User.AdditionalGids
	res = res.DeepCopy()
	if res == nil {
		res = &cgroups.Resources{}
	}
	if r := spec.Linux.Resources; r != nil {
		res.Devices = deviceRules(r.Devices)
	}
	// The cgroup is made once its limits are final; nothing runs in it
	// before Start.
	cg, err := m.opts.Cgroups.Manager(c.Cgroup)
	if err != nil {
		return nil, err
	}
	if err := cg.Create(res); err != nil {
		return nil, fmt.Errorf("container cgroup: %w", err)
	}
	failpoint.Hit("container.create.cgroup")
	c.Resources = res
	if err := m.writeSeccompProgram(ctx, c, spec); err != nil {
		return nil, err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.SpecFile(), data, 0o600); err != nil {
		return nil, err
	}
	// The start worked out now, so that the pod's monitor starts the
	// init itself, without a helper process (monitor.StartPlan).
	if err := monitor.WriteStartPlan(c.Bundle, spec, cg); err != nil {
		return nil, err
	}
	failpoint.Hit("container.create.spec")
	c.Creating = false
	if err := m.records.Put(c); err != nil {
		return nil, err
	}
	failpoint.Hit("container.create.committed")
	m.opts.Metrics.Track(series(c))
	m.publish(c, events.Created)
	return c, nil
}

// writeSeccompProgram compiles the spec's seccomp profile (once per
// distinct profile: m.seccomp) into the bundle, where the monitor hands
// it to the init and each exec reads it, so neither compiles the profile
// (about 7 ms). A profile that does not compile is left to the init,
// which reports it at start as it always has.
func (m *Manager) writeSeccompProgram(ctx context.Context, c *Container, spec *specs.Spec) error {
	if spec.Linux.Seccomp == nil {
		return nil
	}
	prog, err := m.seccomp.Program(spec.Linux.Seccomp)
	if err != nil {
		logctx.From(withIDs(ctx, c)).V(1).Info("Seccomp profile not compiled ahead; the init will", "err", err)
		return nil
	}
	return os.WriteFile(filepath.Join(c.Bundle, executor.SeccompProgramFile), prog, 0o600)
}

// Abandon undoes a prepared container whose create failed. What cannot be
// undone now stays recorded, for start-up to retry.
func (m *Manager) Abandon(ctx context.Context, id string) error {
	unlock := m.records.Lock(id)
	defer unlock()
	c, err := m.records.Get(id)
	if err != nil {
		return nil
	}
	if !c.Creating {
		return fmt.Errorf("container %s is committed: remove it: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	return m.undo(ctx, c)
}

// undo tears down a container being created and forgets it, with a
// context of its own (ctx may be why the create failed). The caller
// holds the container's lock.
func (m *Manager) undo(ctx context.Context, c *Container) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := m.teardown(cctx, c); err != nil {
		logctx.From(withIDs(ctx, c)).Error(err, "Undoing a failed container left something; start-up will retry")
		return err
	}
	return m.forget(c)
}

// deviceRules are a spec's device cgroup rules in the cgroup's terms.
func deviceRules(in []specs.LinuxDeviceCgroup) []cgroups.DeviceRule {
	out := make([]cgroups.DeviceRule, 0, len(in))
	for _, d := range in {
		r := cgroups.DeviceRule{Allow: d.Allow, Type: 'a', Major: -1, Minor: -1, Access: d.Access}
		if d.Type != "" {
			r.Type = d.Type[0]
		}
		if d.Major != nil {
			r.Major = *d.Major
		}
		if d.Minor != nil {
			r.Minor = *d.Minor
		}
		if r.Access == "" {
			r.Access = "rwm"
		}
		out = append(out, r)
	}
	return out
}

// subPathIn resolves sub inside the mounted image at root, symlinks
// resolved as the image sees them, and never outside it.
func subPathIn(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, sub, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return "", fmt.Errorf("not in the image: %w", err)
	}
	defer unix.Close(fd)
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if real != root && !strings.HasPrefix(real, root+"/") {
		return "", fmt.Errorf("resolves outside the image")
	}
	return real, nil
}

// maxUserFile bounds what is read of an image's /etc/passwd or /etc/group.
const maxUserFile = 1 << 20

// readInRoot reads a file of the container's root without following a
// symlink out of it: the image decides what /etc/passwd is. The buffer
// grows with the file: a 1 MiB one per read, zeroed, was 15% of
// CreateContainer's CPU, and its garbage the collector's assists.
func readInRoot(root, p string) []byte {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, p, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, maxUserFile))
	return data
}
