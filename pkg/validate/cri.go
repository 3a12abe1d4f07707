package validate

import (
	"fmt"
	"net"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Sandbox checks every field of a PodSandboxConfig that crid turns into a
// name, a file, a path, an identity or a kernel value. Fields with rules
// of their own elsewhere are checked there, before anything is made:
// sysctls (pkg/sandbox: name form, namespace, no newline or NUL), user
// namespace mappings, resource values (pkg/cgroups).
func Sandbox(c *runtime.PodSandboxConfig) error {
	if c == nil {
		return bad("config", "is missing")
	}
	md := c.GetMetadata()
	if md == nil {
		return bad("config.metadata", "is missing: name, namespace and uid are required")
	}
	errs := []error{
		Name("config.metadata.name", md.Name),
		Name("config.metadata.namespace", md.Namespace),
		Name("config.metadata.uid", md.Uid),
		Hostname("config.hostname", c.Hostname),
		LogDirectory("config.log_directory", c.LogDirectory),
		Strings("config.labels", c.Labels, MaxLabels),
		Strings("config.annotations", c.Annotations, MaxAnnotations),
	}
	if dns := c.GetDnsConfig(); dns != nil {
		errs = append(errs, dnsConfig(dns))
	}
	ports := make([]Port, len(c.PortMappings))
	for i, pm := range c.PortMappings {
		if pm == nil {
			return bad(fmt.Sprintf("config.port_mappings[%d]", i), "is empty")
		}
		if _, ok := runtime.Protocol_name[int32(pm.Protocol)]; !ok {
			return bad(fmt.Sprintf("config.port_mappings[%d].protocol", i), "%d is not TCP, UDP or SCTP", pm.Protocol)
		}
		ports[i] = Port{Protocol: pm.Protocol.String(), ContainerPort: pm.ContainerPort, HostPort: pm.HostPort, HostIP: pm.HostIp}
	}
	errs = append(errs, Ports("config.port_mappings", ports))
	if lc := c.GetLinux(); lc != nil {
		if lc.CgroupParent != "" {
			errs = append(errs, CleanAbsPath("config.linux.cgroup_parent", lc.CgroupParent), Line("config.linux.cgroup_parent", lc.CgroupParent))
		}
		if sc := lc.GetSecurityContext(); sc != nil {
			errs = append(errs, identity("config.linux.security_context", sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups))
		}
		if r := lc.GetResources(); r != nil {
			errs = append(errs, resources("config.linux.resources", r))
		}
	}
	return Join(errs...)
}

func dnsConfig(dns *runtime.DNSConfig) error {
	const field = "config.dns_config"
	if len(dns.Servers) > MaxDNSServers {
		return bad(field+".servers", "has %d; at most %d", len(dns.Servers), MaxDNSServers)
	}
	if len(dns.Searches) > MaxDNSSearches {
		return bad(field+".searches", "has %d; at most %d", len(dns.Searches), MaxDNSSearches)
	}
	if len(dns.Options) > MaxDNSOptions {
		return bad(field+".options", "has %d; at most %d", len(dns.Options), MaxDNSOptions)
	}
	for i, s := range dns.Servers {
		if !parseIP(s) {
			return bad(fmt.Sprintf("%s.servers[%d]", field, i), "%s is not an IP address", q(s))
		}
	}
	for i, s := range dns.Searches {
		if err := Word(fmt.Sprintf("%s.searches[%d]", field, i), s, MaxName); err != nil {
			return err
		}
	}
	for i, s := range dns.Options {
		if err := Word(fmt.Sprintf("%s.options[%d]", field, i), s, MaxName); err != nil {
			return err
		}
	}
	return nil
}

func parseIP(s string) bool {
	return s != "" && len(s) <= 64 && net.ParseIP(s) != nil
}

// identity checks the IDs a security context runs a process as.
func identity(field string, user, group *runtime.Int64Value, groups []int64) error {
	if user != nil {
		if err := ID(field+".run_as_user", user.Value); err != nil {
			return err
		}
	}
	if group != nil {
		if err := ID(field+".run_as_group", group.Value); err != nil {
			return err
		}
	}
	for i, g := range groups {
		if err := ID(fmt.Sprintf("%s.supplemental_groups[%d]", field, i), g); err != nil {
			return err
		}
	}
	return nil
}

func resources(field string, r *runtime.LinuxContainerResources) error {
	errs := []error{
		Cpuset(field+".cpuset_cpus", r.CpusetCpus),
		Cpuset(field+".cpuset_mems", r.CpusetMems),
	}
	for k, v := range r.Unified {
		errs = append(errs, Line(field+".unified["+k+"]", k), Line(field+".unified["+k+"]", v))
	}
	for i, h := range r.HugepageLimits {
		if h == nil {
			errs = append(errs, bad(fmt.Sprintf("%s.hugepage_limits[%d]", field, i), "is empty"))
		}
	}
	return Join(errs...)
}

// Container checks every field of a ContainerConfig that crid turns into
// a name, a path, a process, an identity or a kernel value.
func Container(c *runtime.ContainerConfig) error {
	if c == nil {
		return bad("config", "is missing")
	}
	if c.GetMetadata() == nil {
		return bad("config.metadata", "is missing: a name is required")
	}
	if c.GetImage().GetImage() == "" {
		return bad("config.image.image", "is empty")
	}
	errs := []error{
		Name("config.metadata.name", c.Metadata.Name),
		NoNUL("config.image.image", c.Image.Image),
		LogPath("config.log_path", c.LogPath),
		Strings("config.labels", c.Labels, MaxLabels),
		Strings("config.annotations", c.Annotations, MaxAnnotations),
	}
	if len(c.Image.Image) > 4096 {
		errs = append(errs, bad("config.image.image", "is %d bytes; an image reference is at most 4096", len(c.Image.Image)))
	}
	if c.WorkingDir != "" {
		errs = append(errs, AbsPath("config.working_dir", c.WorkingDir))
	}
	env := make([][2]string, len(c.Envs))
	for i, kv := range c.Envs {
		if kv == nil {
			return bad(fmt.Sprintf("config.envs[%d]", i), "is empty")
		}
		env[i] = [2]string{kv.Key, string(kv.Value)}
	}
	errs = append(errs, Args("config.command", append(append([]string(nil), c.Command...), c.Args...), "config.envs", env))
	for i, m := range c.Mounts {
		f := fmt.Sprintf("config.mounts[%d]", i)
		if m == nil {
			return bad(f, "is empty")
		}
		errs = append(errs, MountTarget(f+".container_path", m.ContainerPath))
		if m.GetImage().GetImage() == "" {
			errs = append(errs, AbsPath(f+".host_path", m.HostPath))
		}
		if _, ok := runtime.MountPropagation_name[int32(m.Propagation)]; !ok {
			errs = append(errs, bad(f+".propagation", "%d is not PRIVATE, HOST_TO_CONTAINER or BIDIRECTIONAL", m.Propagation))
		}
	}
	for i, d := range c.Devices {
		f := fmt.Sprintf("config.devices[%d]", i)
		if d == nil {
			return bad(f, "is empty")
		}
		errs = append(errs, CleanAbsPath(f+".container_path", d.ContainerPath), AbsPath(f+".host_path", d.HostPath))
		for _, p := range d.Permissions {
			if p != 'r' && p != 'w' && p != 'm' {
				errs = append(errs, bad(f+".permissions", "%s: use r, w and m", q(d.Permissions)))
				break
			}
		}
	}
	if lc := c.GetLinux(); lc != nil {
		if r := lc.GetResources(); r != nil {
			errs = append(errs, resources("config.linux.resources", r))
		}
		if sc := lc.GetSecurityContext(); sc != nil {
			const f = "config.linux.security_context"
			errs = append(errs, identity(f, sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups),
				Line(f+".run_as_username", sc.RunAsUsername))
			for i, p := range sc.MaskedPaths {
				errs = append(errs, CleanAbsPath(fmt.Sprintf("%s.masked_paths[%d]", f, i), p))
			}
			for i, p := range sc.ReadonlyPaths {
				errs = append(errs, CleanAbsPath(fmt.Sprintf("%s.readonly_paths[%d]", f, i), p))
			}
		}
	}
	return Join(errs...)
}
