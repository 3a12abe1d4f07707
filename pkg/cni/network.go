package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/crid-dev/crid/pkg/metrics"
)

// IfName is the pod's interface, as the kubelet's other runtimes name it.
const IfName = "eth0"

// Manager attaches pods to the pod network and detaches them.
type Manager struct {
	confDir string
	binDirs []string
	cni     *libcni.CNIConfig
	metrics *metrics.Metrics
}

// NewManager uses the network found in confDir with plugins from binDirs.
// Results and the configuration each pod was attached with are cached in
// cacheDir (keep it on persistent storage): detaching uses them, so it
// works after a restart, after the configuration changed, and after the
// pod's network namespace is gone.
// Each ADD, DEL and CHECK is timed in mt (which may be nil).
func NewManager(confDir string, binDirs []string, cacheDir string, mt *metrics.Metrics) *Manager {
	return &Manager{confDir: confDir, binDirs: binDirs, cni: libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, nil), metrics: mt}
}

// timed records op of the chain on network from start, with its error.
func (m *Manager) timed(network, op string, start time.Time, err error) {
	m.metrics.CNI(network, op, time.Since(start), err)
}

// Pod is who a network attachment is for.
type Pod struct {
	ID          string // the sandbox ID, CNI's container ID
	Name        string
	Namespace   string
	UID         string
	NetNS       string // path of the pinned network namespace; may be "" on detach
	Ports       []PortMapping
	Bandwidth   *Bandwidth
	Annotations map[string]string
}

// PortMapping is a hostPort, in the portmap plugin's terms.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Bandwidth is the bandwidth plugin's runtime config, in bits and bits per
// second, from the kubernetes.io/{ingress,egress}-bandwidth annotations.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// Attachment is what the network gave a pod.
type Attachment struct {
	Network string   `json:"network"`
	IPs     []net.IP `json:"ips"`
}

func (p Pod) runtimeConf() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       p.NetNS,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	if len(p.Ports) > 0 {
		rt.CapabilityArgs["portMappings"] = p.Ports
	}
	if p.Bandwidth != nil {
		rt.CapabilityArgs["bandwidth"] = p.Bandwidth
	}
	if len(p.Annotations) > 0 {
		rt.CapabilityArgs["io.kubernetes.cri.pod-annotations"] = p.Annotations
	}
	return rt
}

// Attach runs ADD for the pod on the pod network. On failure it runs DEL,
// so a half-made attachment (a veth, an IP lease) is not left behind.
func (m *Manager) Attach(ctx context.Context, p Pod) (*Attachment, error) {
	network, err := Discover(m.confDir, m.binDirs)
	if err != nil {
		return nil, err
	}
	rt := p.runtimeConf()
	start := time.Now()
	res, err := m.cni.AddNetworkList(ctx, network.List, rt)
	m.timed(network.Name(), "ADD", start, err)
	if err != nil {
		delErr := m.del(context.WithoutCancel(ctx), network.List, rt)
		return nil, errors.Join(fmt.Errorf("CNI ADD on network %s (%s): %w", network.Name(), network.File, err), delErr)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		m.del(context.WithoutCancel(ctx), network.List, rt)
		return nil, fmt.Errorf("CNI result of network %s: %w", network.Name(), err)
	}
	a := &Attachment{Network: network.Name()}
	for _, ip := range cur.IPs {
		a.IPs = append(a.IPs, ip.Address.IP)
	}
	if len(a.IPs) == 0 {
		m.del(context.WithoutCancel(ctx), network.List, rt)
		return nil, fmt.Errorf("CNI network %s gave the pod no IP address", network.Name())
	}
	return a, nil
}

// Detach runs DEL for the pod. It prefers the configuration the pod was
// attached with (from the cache) to today's; without either there is
// nothing to detach. DEL of a pod that is not attached succeeds, per CNI.
func (m *Manager) Detach(ctx context.Context, p Pod) error {
	rt := p.runtimeConf()
	if p.NetNS != "" {
		if _, err := os.Stat(p.NetNS); err != nil {
			rt.NetNS = "" // gone: plugins still release what they hold
		}
	}
	list, err := m.cachedList(p, rt)
	if err != nil {
		return err
	}
	if list == nil {
		network, err := Discover(m.confDir, m.binDirs)
		if err != nil {
			return nil // never attached, and no network to ask
		}
		list = network.List
	}
	return m.del(ctx, list, rt)
}

// del runs DEL through the chain with the ADD's result as the previous
// result: libcni's cache of it, or, when the ADD did not finish (a
// plugin failed, or crid died in the middle), the addresses recovered
// from the pod, so that each plugin that made its part can undo it.
func (m *Manager) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	start := time.Now()
	if cached, _ := m.cni.GetNetworkListCachedResult(list, rt); cached == nil {
		if res := recoveredResult(list, rt); res != nil {
			err := m.delWith(ctx, list, res, rt)
			m.timed(list.Name, "DEL", start, err)
			if err != nil {
				return fmt.Errorf("CNI DEL on network %s (with the addresses recovered from the pod): %w", list.Name, err)
			}
			return nil
		}
	}
	err := m.cni.DelNetworkList(ctx, list, rt)
	m.timed(list.Name, "DEL", start, err)
	if err != nil {
		return fmt.Errorf("CNI DEL on network %s: %w", list.Name, err)
	}
	return nil
}

// delWith runs DEL through the chain, last plugin first, as libcni's
// DelNetworkList does, with res as every plugin's previous result: the
// ADD's result, recovered where libcni has none cached.
func (m *Manager) delWith(ctx context.Context, list *libcni.NetworkConfigList, res *current.Result, rt *libcni.RuntimeConf) error {
	prev, err := res.GetAsVersion(list.CNIVersion)
	if err != nil {
		return err
	}
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		conf, err := libcni.InjectConf(list.Plugins[i], map[string]any{"name": list.Name, "cniVersion": list.CNIVersion, "prevResult": prev})
		if err != nil {
			return err
		}
		if err := m.cni.DelNetwork(ctx, conf, rt); err != nil {
			return fmt.Errorf("plugin %s failed (delete): %w", list.Plugins[i].Network.Type, err)
		}
	}
	return nil
}

// cachedList rebuilds the network configuration a pod was attached with.
func (m *Manager) cachedList(p Pod, rt *libcni.RuntimeConf) (*libcni.NetworkConfigList, error) {
	network, err := Discover(m.confDir, m.binDirs)
	name := ""
	if err == nil {
		name = network.Name()
	}
	if name == "" {
		return nil, nil
	}
	raw, _, err := m.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: name, CNIVersion: "1.0.0"}, rt)
	if err != nil || raw == nil {
		return nil, nil
	}
	list, err := libcni.NetworkConfFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("cached CNI config of %s: %w", p.ID, err)
	}
	return list, nil
}

// Check runs CHECK for an attached pod, when the network's CNI version has
// it (0.4.0 and later).
func (m *Manager) Check(ctx context.Context, p Pod) error {
	network, err := Discover(m.confDir, m.binDirs)
	if err != nil {
		return err
	}
	start := time.Now()
	err = m.cni.CheckNetworkList(ctx, network.List, p.runtimeConf())
	var cerr *cnitypes.Error
	if errors.Is(err, libcni.ErrorCheckNotSupp) || errors.As(err, &cerr) && cerr.Code == cnitypes.ErrIncompatibleCNIVersion {
		return nil
	}
	m.timed(network.Name(), "CHECK", start, err)
	return err
}

// GC detaches every cached attachment of the pod network whose sandbox is
// not in valid (a pod crid lost track of in a crash), and asks plugins of
// CNI 1.1 and later to collect what they hold for pods not in valid.
func (m *Manager) GC(ctx context.Context, valid []string) error {
	network, err := Discover(m.confDir, m.binDirs)
	if err != nil {
		return nil // no network, nothing attached through it
	}
	args := &libcni.GCArgs{}
	for _, id := range valid {
		args.ValidAttachments = append(args.ValidAttachments, cnitypes.GCAttachment{ContainerID: id, IfName: IfName})
	}
	if err := m.cni.GCNetworkList(ctx, network.List, args); err != nil {
		return fmt.Errorf("CNI GC on network %s: %w", network.Name(), err)
	}
	return nil
}
