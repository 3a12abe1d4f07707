// Package generate turns a CRI container request, the image's config and
// the pod's sandbox into an OCI runtime-spec configuration for crid's
// executor. It is pure: everything it needs is passed in, so every rule
// the kubelet and critest rely on is table-tested here, apart from the
// executor that runs the result.
package generate

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Input is what a container is made from.
type Input struct {
	Container *runtime.ContainerConfig
	Sandbox   *runtime.PodSandboxConfig
	Image     *v1.ConfigFile
	Users     Users // the image's /etc/passwd and /etc/group

	Rootfs      string
	CgroupsPath string
	Hostname    string
	// Files of the pod's sandbox that every container mounts.
	HostsPath, ResolvPath, HostnamePath, ShmPath string
	// Pinned pod namespaces; an empty path with Host* set means the host's.
	NetNS, IPCNS, UTSNS, PIDNS    string
	HostNetwork, HostIPC, HostPID bool
	// TerminationMessageHostPath is the host file behind the container's
	// termination_message_path, made by the caller.
	TerminationMessageHostPath string
	// ImageVolumes maps the index of each image mount in the request to
	// the host path of its image, mounted read-only by the caller (the
	// subpath already resolved inside it).
	ImageVolumes map[int]string
	// DaemonCaps are the capabilities crid itself holds: a privileged
	// container gets these, never more (on hosts that withhold
	// CAP_SYS_RESOURCE even from root, asking for it fails the container).
	DaemonCaps []string
	// StatDevice describes a host device (type, major, minor, mode): the
	// executor's os.Stat, a fake in tests.
	StatDevice func(hostPath string) (specs.LinuxDevice, error)
	// ResolveSource resolves the symlinks of a bind mount's source on
	// the host (filepath.EvalSymlinks; nil leaves sources as given): the
	// spec keeps the real path, which the executor then opens refusing
	// any symlink, so a source swapped for one between CreateContainer
	// and StartContainer is refused rather than followed.
	ResolveSource func(hostPath string) (string, error)
	// SeccompProfileRoot is where Localhost seccomp profiles live.
	SeccompProfileRoot string
	CgroupV2           bool
	// UserNS is the pod's pinned user namespace, with the mappings it was
	// made with, when the pod runs in one (hostUsers: false).
	UserNS                   string
	UIDMappings, GIDMappings []specs.LinuxIDMapping
}

// DefaultCapabilities are the capabilities containerd and CRI-O give a
// container by default (Docker's set).
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Default masked and read-only paths, the kubelet's and containerd's.
var (
	DefaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	DefaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec builds the runtime-spec configuration of a container.
func Spec(in Input) (*specs.Spec, error) {
	c := in.Container
	if c == nil {
		return nil, errors.New("container config is missing")
	}
	if in.Image == nil {
		in.Image = &v1.ConfigFile{}
	}
	sc := c.GetLinux().GetSecurityContext()
	privileged := sc.GetPrivileged()
	if privileged && !in.Sandbox.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, badInput("linux.security_context.privileged: the pod is not privileged, so its containers may not be")
	}

	args, err := processArgs(c, in.Image.Config)
	if err != nil {
		return nil, err
	}
	proc := &specs.Process{
		Terminal:        c.Tty,
		Args:            args,
		Env:             env(in.Image.Config.Env, c.Envs, in.Hostname),
		Cwd:             firstNonEmpty(c.WorkingDir, in.Image.Config.WorkingDir, "/"),
		NoNewPrivileges: sc.GetNoNewPrivs(),
	}
	if !path.IsAbs(proc.Cwd) {
		return nil, badInput("working_dir %q is not an absolute path", proc.Cwd)
	}
	user, err := identity(in)
	if err != nil {
		return nil, err
	}
	proc.User = specs.User{UID: user.UID, GID: user.GID, AdditionalGids: user.Additional}
	if !hasEnv(proc.Env, "HOME") {
		proc.Env = append(proc.Env, "HOME="+user.Home)
	}
	caps, err := capabilities(sc, privileged, in.DaemonCaps)
	if err != nil {
		return nil, err
	}
	proc.Capabilities = caps
	if r := c.GetLinux().GetResources(); r != nil && r.OomScoreAdj != 0 {
		v := int(r.OomScoreAdj)
		proc.OOMScoreAdj = &v
	}

	s := &specs.Spec{
		Version:     specs.Version,
		Process:     proc,
		Root:        &specs.Root{Path: in.Rootfs, Readonly: sc.GetReadonlyRootfs()},
		Hostname:    in.Hostname,
		Annotations: c.Annotations,
		Linux:       &specs.Linux{CgroupsPath: in.CgroupsPath},
	}
	if s.Linux.Namespaces, err = namespaces(in, sc); err != nil {
		return nil, err
	}
	mounts, err := mountList(in, privileged)
	if err != nil {
		return nil, err
	}
	if in.ResolveSource != nil {
		for i, m := range mounts {
			if m.Type != "bind" {
				continue
			}
			// A source missing now fails at start, saying so.
			if real, err := in.ResolveSource(m.Source); err == nil {
				mounts[i].Source = real
			}
		}
	}
	s.Mounts = mounts
	if in.UserNS != "" {
		if err := userNamespace(s, in, sc); err != nil {
			return nil, err
		}
	}
	for _, m := range c.GetMounts() {
		switch m.Propagation {
		case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			s.Linux.RootfsPropagation = "rshared"
		case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			if s.Linux.RootfsPropagation == "" {
				s.Linux.RootfsPropagation = "rslave"
			}
		}
	}
	if !privileged {
		s.Linux.MaskedPaths = orDefault(sc.GetMaskedPaths(), DefaultMaskedPaths)
		s.Linux.ReadonlyPaths = orDefault(sc.GetReadonlyPaths(), DefaultReadonlyPaths)
	}
	if err := devices(s, c.GetDevices(), privileged, in.StatDevice); err != nil {
		return nil, err
	}
	if err := setSeccomp(s, sc, privileged, in.SeccompProfileRoot); err != nil {
		return nil, err
	}
	return s, nil
}

// userNamespace puts the container in its pod's user namespace: the
// container's root is the pod's mapped root, and every bind mount but
// image volumes (overlays, which cannot be idmapped: they show the host's
// owners, unmapped) is idmapped with the same mappings, so files the
// host's root owns are the container root's.
func userNamespace(s *specs.Spec, in Input, sc *runtime.LinuxContainerSecurityContext) error {
	if opts := sc.GetNamespaceOptions().GetUsernsOptions(); opts != nil && opts.Mode != runtime.NamespaceMode_POD {
		return badInput("linux.security_context.namespace_options.userns_options.mode: %s, but the pod runs in a user namespace of its own (POD)", opts.Mode)
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: in.UserNS})
	s.Linux.UIDMappings, s.Linux.GIDMappings = in.UIDMappings, in.GIDMappings
	images := map[string]bool{}
	for _, src := range in.ImageVolumes {
		images[src] = true
	}
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Type == "bind" && !images[m.Source] {
			m.UIDMappings, m.GIDMappings = in.UIDMappings, in.GIDMappings
		}
	}
	return nil
}

// processArgs merges the command by the CRI's rules: the container's
// command replaces the image's entrypoint (and then its cmd is not used);
// the container's args replace the image's cmd.
func processArgs(c *runtime.ContainerConfig, img v1.Config) ([]string, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if len(c.Command) > 0 {
		entrypoint, cmd = c.Command, nil
	}
	if len(c.Args) > 0 {
		cmd = c.Args
	}
	args := append(append([]string{}, entrypoint...), cmd...)
	if len(args) == 0 {
		return nil, badInput("no command: the container sets neither command nor args, and the image has no entrypoint or cmd")
	}
	return args, nil
}

// env is the image's environment overridden by the container's, with PATH
// and HOSTNAME as containerd sets them when absent.
func env(image []string, kvs []*runtime.KeyValue, hostname string) []string {
	var out []string
	index := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			return
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	if hostname != "" {
		set("HOSTNAME=" + hostname)
	}
	for _, kv := range image {
		set(kv)
	}
	for _, kv := range kvs {
		set(kv.Key + "=" + string(kv.Value))
	}
	if !hasEnv(out, "PATH") {
		out = append([]string{defaultPath}, out...)
	}
	return out
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// identity resolves who the process runs as: the container's run_as_user
// or run_as_username, else the image's USER; run_as_group over the user's
// primary group; supplemental groups from the pod and container, plus the
// user's groups in /etc/group unless the policy is Strict.
func identity(in Input) (Identity, error) {
	sc := in.Container.GetLinux().GetSecurityContext()
	userSpec := in.Image.Config.User
	switch {
	case sc.GetRunAsUser() != nil:
		userSpec = fmt.Sprint(sc.GetRunAsUser().GetValue())
	case sc.GetRunAsUsername() != "":
		userSpec = sc.GetRunAsUsername()
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return Identity{}, badInput("linux.security_context.run_as_group is set without run_as_user or run_as_username")
	}
	// The image's group applies only to the image's user.
	if sc.GetRunAsUser() != nil || sc.GetRunAsUsername() != "" {
		userSpec, _, _ = strings.Cut(userSpec, ":")
	}
	id, err := in.Users.Resolve(userSpec)
	if err != nil {
		return id, badInput("user of the container: %w", err)
	}
	if g := sc.GetRunAsGroup(); g != nil {
		id.GID = uint32(g.GetValue())
	}
	seen := map[uint32]bool{id.GID: true}
	add := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			id.Additional = append(id.Additional, g)
		}
	}
	if sc.GetSupplementalGroupsPolicy() != runtime.SupplementalGroupsPolicy_Strict {
		for _, g := range in.Users.GroupsOf(id.Username) {
			add(g)
		}
	}
	for _, g := range sc.GetSupplementalGroups() {
		add(uint32(g))
	}
	return id, nil
}

// capabilities applies add/drop to the default set. "ALL" in add gives
// everything the daemon holds; "ALL" in drop starts from nothing (so
// add lists exactly what remains, as Kubernetes means it).
func capabilities(sc *runtime.LinuxContainerSecurityContext, privileged bool, daemon []string) (*specs.LinuxCapabilities, error) {
	held := map[string]bool{}
	for _, c := range daemon {
		held[c] = true
	}
	var set []string
	if privileged {
		set = append(set, daemon...)
	} else {
		caps := sc.GetCapabilities()
		current := map[string]bool{}
		for _, c := range DefaultCapabilities {
			current[c] = true
		}
		for _, d := range caps.GetDropCapabilities() {
			if strings.EqualFold(d, "ALL") {
				current = map[string]bool{}
				continue
			}
			delete(current, capName(d))
		}
		for _, a := range caps.GetAddCapabilities() {
			if strings.EqualFold(a, "ALL") {
				for _, c := range daemon {
					current[c] = true
				}
				continue
			}
			name := capName(a)
			if !held[name] {
				return nil, badInput("linux.security_context.capabilities.add_capabilities: %s is not held by the runtime on this host, so no container can have it", name)
			}
			current[name] = true
		}
		for c := range current {
			if held[c] {
				set = append(set, c)
			}
		}
	}
	sort.Strings(set)
	return &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}, nil
}

func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

func namespaces(in Input, sc *runtime.LinuxContainerSecurityContext) ([]specs.LinuxNamespace, error) {
	if sc.GetNamespaceOptions().GetPid() == runtime.NamespaceMode_TARGET {
		return nil, badInput("linux.security_context.namespace_options.pid: TARGET (sharing another container's PID namespace) is not supported yet")
	}
	if sc.GetNamespaceOptions().GetPid() == runtime.NamespaceMode_NODE && !in.HostPID {
		return nil, badInput("linux.security_context.namespace_options.pid: NODE needs a pod with host PID")
	}
	if mode := sc.GetNamespaceOptions().GetUsernsOptions().GetMode(); mode == runtime.NamespaceMode_POD && in.UserNS == "" && sc.GetNamespaceOptions().GetUsernsOptions() != nil {
		return nil, badInput("linux.security_context.namespace_options.userns_options.mode: POD, but the pod has no user namespace (its sandbox was made with mode NODE)")
	} else if mode == runtime.NamespaceMode_CONTAINER || mode == runtime.NamespaceMode_TARGET {
		return nil, badInput("linux.security_context.namespace_options.userns_options.mode: %s is not supported: use POD (the pod's user namespace) or NODE", mode)
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if !in.HostNetwork {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNS})
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: in.UTSNS})
	}
	if !in.HostIPC {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: in.IPCNS})
	}
	switch sc.GetNamespaceOptions().GetPid() {
	case runtime.NamespaceMode_NODE:
		// the host's: no entry
	case runtime.NamespaceMode_POD:
		// The pod's shared namespace when it has one; NamespaceMode's zero
		// value is POD, so a container that says nothing lands here too.
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.PIDNS})
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if in.CgroupV2 {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns, nil
}

// mountList is the container's mounts: the kernel file systems CRI-O
// gives every container, the pod's files, then the request's mounts,
// ordered so a parent is mounted before what is mounted inside it.
func mountList(in Input, privileged bool) ([]specs.Mount, error) {
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	cgOpts := []string{"nosuid", "noexec", "nodev", "relatime", "ro"}
	if privileged {
		sysOpts[3], cgOpts[4] = "rw", "rw"
	}
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: cgOpts},
	}
	requested := map[string]bool{}
	for _, m := range in.Container.GetMounts() {
		requested[path.Clean(m.ContainerPath)] = true
	}
	bind := func(dst, src string, ro bool) {
		if src == "" || requested[dst] {
			return
		}
		opts := []string{"rbind", "rprivate"}
		if ro {
			opts = append(opts, "ro")
		}
		ms = append(ms, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts})
	}
	readonly := in.Container.GetLinux().GetSecurityContext().GetReadonlyRootfs()
	bind("/etc/hosts", in.HostsPath, readonly)
	bind("/etc/resolv.conf", in.ResolvPath, readonly)
	bind("/etc/hostname", in.HostnamePath, readonly)
	if in.ShmPath != "" && !requested["/dev/shm"] {
		ms = append(ms, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: in.ShmPath, Options: []string{"rbind", "rprivate", "nosuid", "noexec", "nodev"}})
	} else if !requested["/dev/shm"] {
		ms = append(ms, specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}})
	}
	for i, m := range in.Container.GetMounts() {
		field := fmt.Sprintf("mounts[%d]", i)
		if !path.IsAbs(m.ContainerPath) {
			return nil, badInput("%s.container_path %q is not absolute", field, m.ContainerPath)
		}
		if m.GetImage().GetImage() != "" {
			if !m.Readonly {
				return nil, badInput("%s: an image volume must be read-only", field)
			}
			src, ok := in.ImageVolumes[i]
			if !ok {
				return nil, badInput("%s.image %q is not mounted", field, m.Image.Image)
			}
			ms = append(ms, specs.Mount{Destination: path.Clean(m.ContainerPath), Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev"}})
			continue
		}
		if m.HostPath == "" || !path.IsAbs(m.HostPath) {
			return nil, badInput("%s.host_path %q is not absolute", field, m.HostPath)
		}
		if m.RecursiveReadOnly {
			// A recursive read-only mount must stay read-only all the way
			// down: it needs ro, and a propagation that cannot bring a
			// new, writable submount in from the host later.
			if !m.Readonly {
				return nil, badInput("%s.recursive_read_only needs readonly: true as well", field)
			}
			if m.Propagation != runtime.MountPropagation_PROPAGATION_PRIVATE {
				return nil, badInput("%s.recursive_read_only needs propagation PROPAGATION_PRIVATE, not %s: mounts propagated from the host would not be read-only", field, m.Propagation)
			}
		}
		opts := []string{"rbind"}
		switch m.Propagation {
		case runtime.MountPropagation_PROPAGATION_PRIVATE:
			opts = append(opts, "rprivate")
		case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			opts = append(opts, "rslave")
		case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			if !privileged {
				return nil, badInput("%s.propagation: Bidirectional needs a privileged container", field)
			}
			opts = append(opts, "rshared")
		}
		switch {
		case m.RecursiveReadOnly:
			opts = append(opts, "rro")
		case m.Readonly:
			opts = append(opts, "ro")
		}
		ms = append(ms, specs.Mount{Destination: path.Clean(m.ContainerPath), Type: "bind", Source: m.HostPath, Options: opts})
	}
	if in.TerminationMessageHostPath != "" {
		dst := firstNonEmpty(in.Container.GetAnnotations()["io.kubernetes.container.terminationMessagePath"], "/dev/termination-log")
		if !requested[dst] {
			ms = append(ms, specs.Mount{Destination: dst, Type: "bind", Source: in.TerminationMessageHostPath, Options: []string{"rbind", "rprivate"}})
		}
	}
	// Stable by depth: /a before /a/b, and requests in their order.
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(path.Clean(ms[i].Destination), "/") < strings.Count(path.Clean(ms[j].Destination), "/")
	})
	return ms, nil
}

// DefaultDeviceRules are what every container may use besides the devices
// it asks for, runc's and containerd's set: make any node (using it is
// another matter), and the null, zero, full, random, urandom, tty, ptmx
// and pty devices its /dev holds.
var DefaultDeviceRules = func() []specs.LinuxDeviceCgroup {
	rule := func(t string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: t, Access: access}
		if major >= 0 {
			r.Major = &major
		}
		if minor >= 0 {
			r.Minor = &minor
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		rule("c", -1, -1, "m"), rule("b", -1, -1, "m"),
		rule("c", 1, 3, "rwm"), rule("c", 1, 5, "rwm"), rule("c", 1, 7, "rwm"), rule("c", 1, 8, "rwm"), rule("c", 1, 9, "rwm"),
		rule("c", 5, 0, "rwm"), rule("c", 5, 2, "rwm"), rule("c", 136, -1, "rwm"),
	}
}()

// devices adds the request's devices, each allowed in the device cgroup
// for exactly its type, numbers and the access asked. A privileged
// container may use every device.
func devices(s *specs.Spec, devs []*runtime.Device, privileged bool, stat func(string) (specs.LinuxDevice, error)) error {
	s.Linux.Resources = &specs.LinuxResources{Devices: append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, DefaultDeviceRules...)}
	if privileged {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for i, d := range devs {
		field := fmt.Sprintf("devices[%d]", i)
		if !path.IsAbs(d.ContainerPath) || !path.IsAbs(d.HostPath) {
			return badInput("%s: %q -> %q: both paths must be absolute", field, d.HostPath, d.ContainerPath)
		}
		perms := d.Permissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return badInput("%s.permissions %q: only r, w and m", field, perms)
		}
		if stat == nil {
			return fmt.Errorf("%s: no way to look up host devices", field)
		}
		dev, err := stat(d.HostPath)
		if err != nil {
			return badInput("%s.host_path %s: %w", field, d.HostPath, err)
		}
		dev.Path = d.ContainerPath
		s.Linux.Devices = append(s.Linux.Devices, dev)
		major, minor := dev.Major, dev.Minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
			specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms})
	}
	return nil
}

// setSeccomp applies the seccomp profile: RuntimeDefault is Docker's and
// CRI-O's default profile (which widens with the capabilities given);
// Unconfined and privileged containers get none; Localhost profiles are
// read by the executor from SeccompProfileRoot.
func setSeccomp(s *specs.Spec, sc *runtime.LinuxContainerSecurityContext, privileged bool, root string) error {
	p := sc.GetSeccomp()
	if privileged || p == nil || p.ProfileType == runtime.SecurityProfile_Unconfined {
		return nil
	}
	switch p.ProfileType {
	case runtime.SecurityProfile_RuntimeDefault:
		prof, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return fmt.Errorf("default seccomp profile: %w", err)
		}
		s.Linux.Seccomp = prof
	case runtime.SecurityProfile_Localhost:
		ref := p.LocalhostRef
		if !path.IsAbs(ref) || strings.Contains(ref, "..") {
			return badInput("linux.security_context.seccomp.localhost_ref %q must be an absolute path without ..", ref)
		}
		if root != "" && !strings.HasPrefix(ref, path.Clean(root)+"/") {
			return badInput("linux.security_context.seccomp.localhost_ref %q is outside the profile root %s", ref, root)
		}
		body, err := os.ReadFile(ref)
		if err != nil {
			return badInput("linux.security_context.seccomp.localhost_ref: %w", err)
		}
		prof, err := seccomp.LoadProfile(string(body), s)
		if err != nil {
			return badInput("seccomp profile %s: %w", ref, err)
		}
		s.Linux.Seccomp = prof
	}
	return nil
}

func orDefault(v, def []string) []string {
	if v != nil {
		return v
	}
	return append([]string(nil), def...)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
