package server

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/validate"
)

// sandboxSpec checks a PodSandboxConfig and translates it. Every refusal
// names the field and happens before anything is made.
func (s *Server) sandboxSpec(req *runtime.RunPodSandboxRequest) (sandbox.Spec, error) {
	c := req.GetConfig()
	if err := validate.Sandbox(c); err != nil {
		return sandbox.Spec{}, err
	}
	md := c.GetMetadata()
	handler := req.GetRuntimeHandler()
	if !s.cfg.Runtime.ServesHandler(handler) {
		return sandbox.Spec{}, invalid("runtime_handler", "%q is not a handler of this runtime (it has %q; more are named in runtime.handlers)", handler, s.cfg.Runtime.HandlerNames())
	}
	if handler == "" {
		handler = s.cfg.Runtime.DefaultHandler
	}
	spec := sandbox.Spec{
		Name: md.Name, Namespace: md.Namespace, UID: md.Uid, Attempt: md.Attempt,
		Hostname: c.Hostname, LogDirectory: c.LogDirectory,
		Labels: c.Labels, Annotations: c.Annotations, RuntimeHandler: handler,
	}
	if dns := c.GetDnsConfig(); dns != nil {
		spec.DNS = &sandbox.DNS{Servers: dns.Servers, Searches: dns.Searches, Options: dns.Options}
	}
	for _, pm := range c.GetPortMappings() {
		if pm.HostPort == 0 {
			continue // only exposed, not published on the node
		}
		spec.Ports = append(spec.Ports, cni.PortMapping{
			HostPort: pm.HostPort, ContainerPort: pm.ContainerPort,
			Protocol: strings.ToLower(pm.Protocol.String()), HostIP: pm.HostIp,
		})
	}
	bw, err := bandwidth(c.Annotations)
	if err != nil {
		return sandbox.Spec{}, err
	}
	spec.Bandwidth = bw

	lc := c.GetLinux()
	spec.CgroupParent = lc.GetCgroupParent()
	spec.Sysctls = lc.GetSysctls()
	ns := lc.GetSecurityContext().GetNamespaceOptions()
	spec.HostNetwork = ns.GetNetwork() == runtime.NamespaceMode_NODE
	spec.HostIPC = ns.GetIpc() == runtime.NamespaceMode_NODE
	switch ns.GetPid() {
	case runtime.NamespaceMode_NODE:
		spec.HostPID = true
	case runtime.NamespaceMode_POD:
		spec.SharedPID = true
	case runtime.NamespaceMode_TARGET:
		return sandbox.Spec{}, invalid("config.linux.security_context.namespace_options.pid", "TARGET is for containers, not pods")
	}
	if ns.GetNetwork() == runtime.NamespaceMode_CONTAINER || ns.GetNetwork() == runtime.NamespaceMode_TARGET {
		return sandbox.Spec{}, invalid("config.linux.security_context.namespace_options.network", "a pod's network is POD or NODE")
	}
	if spec.UserNS, err = userNamespace(ns.GetUsernsOptions(), spec); err != nil {
		return sandbox.Spec{}, err
	}
	sc := lc.GetSecurityContext()
	if u := sc.GetRunAsUser(); u != nil {
		v := u.Value
		spec.RunAsUser = &v
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if sc.GetRunAsUser() == nil {
			return sandbox.Spec{}, invalid("config.linux.security_context.run_as_group", "is set without run_as_user")
		}
		v := g.Value
		spec.RunAsGroup = &v
	}
	spec.SupplementalGroups = sc.GetSupplementalGroups()
	spec.SeccompDefault = sc.GetSeccomp().GetProfileType() == runtime.SecurityProfile_RuntimeDefault
	if r := lc.GetResources(); r != nil {
		res, err := cgroupResources(r, 0)
		if err != nil {
			return sandbox.Spec{}, err
		}
		spec.Resources = res
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return sandbox.Spec{}, err
	}
	spec.Raw = raw
	return spec, nil
}

// bandwidth reads the kubernetes.io/ingress-bandwidth and egress-bandwidth
// annotations (bits per second, in Kubernetes quantities) for the CNI
// bandwidth plugin.
func bandwidth(annotations map[string]string) (*cni.Bandwidth, error) {
	var bw cni.Bandwidth
	for key, dst := range map[string]*uint64{
		"kubernetes.io/ingress-bandwidth": &bw.IngressRate,
		"kubernetes.io/egress-bandwidth":  &bw.EgressRate,
	} {
		v, ok := annotations[key]
		if !ok {
			continue
		}
		n, err := parseQuantity(v)
		if err != nil {
			return nil, invalid("config.annotations["+key+"]", "%q: %v", v, err)
		}
		*dst = n
	}
	if bw.IngressRate == 0 && bw.EgressRate == 0 {
		return nil, nil
	}
	// The kubelet's other runtimes set the burst to the largest value the
	// plugin takes, leaving the rate to limit.
	const maxBurst = 2147483647 // bits
	if bw.IngressRate > 0 {
		bw.IngressBurst = maxBurst
	}
	if bw.EgressRate > 0 {
		bw.EgressBurst = maxBurst
	}
	return &bw, nil
}

// parseQuantity reads a Kubernetes quantity such as 10M or 1Gi as an
// integer.
func parseQuantity(s string) (uint64, error) {
	suffixes := []struct {
		s string
		m uint64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
	}
	mult := uint64(1)
	for _, suf := range suffixes {
		if strings.HasSuffix(s, suf.s) {
			s, mult = strings.TrimSuffix(s, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a whole quantity such as 10M or 1Gi")
	}
	if n != 0 && n*mult/n != mult {
		return 0, fmt.Errorf("too large")
	}
	return n * mult, nil
}

// userNamespace checks a pod's user namespace options: NODE (or none) is
// the host's; POD is a namespace of the pod's own with exactly one UID
// and one GID mapping (the kubelet's shape) that maps container ID 0, in a
// pod with its own network and IPC (the kubelet refuses hostUsers: false
// with either of the host's).
func userNamespace(u *runtime.UserNamespace, spec sandbox.Spec) (*sandbox.IDMappings, error) {
	const field = "config.linux.security_context.namespace_options.userns_options"
	if u == nil {
		return nil, nil // the host's (NamespaceMode's zero value is POD)
	}
	switch u.GetMode() {
	case runtime.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return nil, invalid(field, "mode NODE takes no uids or gids")
		}
		return nil, nil
	case runtime.NamespaceMode_POD:
	default:
		return nil, invalid(field+".mode", "%s: a pod's user namespace is POD (its own) or NODE (the host's)", u.GetMode())
	}
	if spec.HostNetwork || spec.HostIPC || spec.HostPID {
		return nil, invalid(field, "a pod in a user namespace cannot use the host's network, IPC or PID namespace")
	}
	convert := func(name string, ms []*runtime.IDMapping) ([]specs.LinuxIDMapping, error) {
		if len(ms) != 1 {
			return nil, invalid(field+"."+name, "has %d mappings: exactly one is supported", len(ms))
		}
		m := ms[0]
		switch {
		case m.ContainerId != 0:
			return nil, invalid(field+"."+name+"[0].container_id", "is %d: the mapping must start at container ID 0 (the container's root)", m.ContainerId)
		case m.Length == 0:
			return nil, invalid(field+"."+name+"[0].length", "is 0")
		case m.HostId == 0:
			return nil, invalid(field+"."+name+"[0].host_id", "is 0: the host's root is never mapped into a pod")
		case uint64(m.HostId)+uint64(m.Length) > 1<<32-1:
			return nil, invalid(field+"."+name+"[0]", "host IDs %d+%d run past the last ID", m.HostId, m.Length)
		}
		return []specs.LinuxIDMapping{{ContainerID: m.ContainerId, HostID: m.HostId, Size: m.Length}}, nil
	}
	uids, err := convert("uids", u.GetUids())
	if err != nil {
		return nil, err
	}
	gids, err := convert("gids", u.GetGids())
	if err != nil {
		return nil, err
	}
	return &sandbox.IDMappings{UIDs: uids, GIDs: gids}, nil
}
