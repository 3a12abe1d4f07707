package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crid-dev/crid/pkg/netns"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/pkg/failpoint"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/proc"
	"github.com/crid-dev/crid/pkg/records"
	"github.com/crid-dev/crid/pkg/store"
)

// State is a sandbox's CRI state.
type State string

const (
	Ready    State = "ready"
	NotReady State = "notready"
)

// DNS is the pod's resolver configuration.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Spec is what a sandbox is asked to be, in crid's terms; the server
// translates the CRI's PodSandboxConfig into it.
type Spec struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	Attempt   uint32 `json:"attempt"`

	Hostname     string            `json:"hostname,omitempty"`
	LogDirectory string            `json:"logDirectory,omitempty"`
	DNS          *DNS              `json:"dns,omitempty"`
	Ports        []cni.PortMapping `json:"ports,omitempty"`
	Bandwidth    *cni.Bandwidth    `json:"bandwidth,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`

	CgroupParent string             `json:"cgroupParent,omitempty"`
	Resources    *cgroups.Resources `json:"resources,omitempty"`

	HostNetwork bool `json:"hostNetwork,omitempty"`
	HostIPC     bool `json:"hostIPC,omitempty"`
	HostPID     bool `json:"hostPID,omitempty"`
	SharedPID   bool `json:"sharedPID,omitempty"` // one PID namespace for the pod's containers

	Sysctls map[string]string `json:"sysctls,omitempty"`

	// UserNS, when set, gives the pod a user namespace of its own with
	// these mappings (hostUsers: false); its other namespaces belong to it.
	UserNS *IDMappings `json:"userNS,omitempty"`

	// Who the infra process runs as, once its namespaces are set up, and
	// whether it runs under the default seccomp profile.
	RunAsUser          *int64  `json:"runAsUser,omitempty"`
	RunAsGroup         *int64  `json:"runAsGroup,omitempty"`
	SupplementalGroups []int64 `json:"supplementalGroups,omitempty"`
	SeccompDefault     bool    `json:"seccompDefault,omitempty"`
	RuntimeHandler     string  `json:"runtimeHandler,omitempty"`

	// Raw is the request as the kubelet sent it, kept for verbose status.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// IDMappings are a user namespace's: container IDs to host IDs.
type IDMappings struct {
	UIDs []specs.LinuxIDMapping `json:"uids"`
	GIDs []specs.LinuxIDMapping `json:"gids"`
}

// Key is the name a sandbox reserves: one sandbox per pod attempt.
func (s Spec) Key() string {
	return fmt.Sprintf("%s_%s_%s_%d", s.Name, s.Namespace, s.UID, s.Attempt)
}

// Sandbox is a pod sandbox's record.
type Sandbox struct {
	ID        string    `json:"id"`
	Spec      Spec      `json:"spec"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	// Creating is set from the first kernel resource made until the
	// sandbox is ready: a record found so at start-up is a crash halfway,
	// cleaned up and forgotten.
	Creating bool   `json:"creating,omitempty"`
	BootID   string `json:"bootID"`

	Dir        string     `json:"dir"`
	NS         Namespaces `json:"ns"`
	InfraPID   int        `json:"infraPID,omitempty"`
	InfraStart uint64     `json:"infraStart,omitempty"` // tells a reused PID apart
	Cgroup     string     `json:"cgroup"`
	OwnCgroup  bool       `json:"ownCgroup"` // made by crid, not the kubelet: crid removes it
	Network    string     `json:"network,omitempty"`
	IPs        []string   `json:"ips,omitempty"`
	Attached   bool       `json:"attached,omitempty"`
	ShmMounted bool       `json:"shmMounted,omitempty"`
}

// ShmPath is the pod's /dev/shm on the host.
func (s *Sandbox) ShmPath() string { return filepath.Join(s.Dir, "shm") }

// HostsPath, ResolvPath and HostnamePath are the files containers mount.
func (s *Sandbox) HostsPath() string    { return filepath.Join(s.Dir, "hosts") }
func (s *Sandbox) ResolvPath() string   { return filepath.Join(s.Dir, "resolv.conf") }
func (s *Sandbox) HostnamePath() string { return filepath.Join(s.Dir, "hostname") }

// Options configure a Manager.
type Options struct {
	RunRoot  string
	Store    *store.Store
	Cgroups  Cgroups
	CNI      Network
	Monitors Monitors
	Kernel   Kernel
	// ShmSize is each pod's /dev/shm, in bytes (64 MiB, as Docker's).
	ShmSize int64
	// DefaultCgroupParent holds the cgroups of pods the kubelet gave no
	// parent (crictl, critest): /crid/<sandbox id>.
	DefaultCgroupParent string
}

// Manager holds the node's sandboxes. Lookups are answered from memory;
// the store is written through. It knows nothing of containers: the CRI
// server stops and removes a pod's containers before its sandbox.
type Manager struct {
	opts    Options
	records *records.Set[Sandbox, *Sandbox]
}

// New loads the sandboxes recorded in the store and reconciles them with
// the machine.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.ShmSize == 0 {
		opts.ShmSize = 64 << 20
	}
	if opts.DefaultCgroupParent == "" {
		opts.DefaultCgroupParent = "/crid"
	}
	m := &Manager{opts: opts, records: records.New[Sandbox](opts.Store, store.BucketSandboxes, "sandbox")}
	if err := os.MkdirAll(m.sandboxesDir(), 0o711); err != nil {
		return nil, err
	}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) sandboxesDir() string { return filepath.Join(m.opts.RunRoot, "sandboxes") }

// Get finds a sandbox by ID or unique ID prefix, as the CRI may see it:
// one still being made does not exist yet.
func (m *Manager) Get(id string) (*Sandbox, error) { return m.records.Visible(id) }

// CheckNetwork asks the CNI plugins whether a ready pod's network still
// holds (CNI CHECK). It runs every plugin of the network, so it is kept off
// start-up and the kubelet's polling path: verbose status calls it, for an
// operator asking why a pod cannot be reached. A pod without an attachment
// (host network, not ready) has nothing to check.
func (m *Manager) CheckNetwork(ctx context.Context, s *Sandbox) error {
	if s.State != Ready || !s.Attached {
		return nil
	}
	return m.opts.CNI.Check(ctx, m.cniPod(s))
}

// DialPort connects to port on a pod's loopback, from inside its network
// namespace (the host's, for a host-network pod): the pod's own address,
// never another host's. Port forwarding splices a client onto it.
func (m *Manager) DialPort(ctx context.Context, id string, port int32) (net.Conn, error) {
	s, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	dial := func() error {
		var err error
		conn, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
		return err
	}
	if s.NS.Net != "" {
		err = netns.InNet(s.NS.Net, dial)
	} else {
		err = dial()
	}
	if err != nil {
		return nil, fmt.Errorf("port %d of pod %s: %w", port, s.ID, err)
	}
	return conn, nil
}

// The records.Record methods.
func (s *Sandbox) RecordID() string        { return s.ID }
func (s *Sandbox) ReservedName() string    { return s.Spec.Key() }
func (s *Sandbox) InCreation() bool        { return s.Creating }
func (s *Sandbox) CreationTime() time.Time { return s.CreatedAt }

// DeepCopy returns a copy of s that shares nothing with it that anyone
// changes.
func (s *Sandbox) DeepCopy() *Sandbox {
	c := *s
	c.IPs = slices.Clone(s.IPs)
	c.Spec = s.Spec.deepCopy()
	return &c
}

func (s Spec) deepCopy() Spec {
	c := s
	if s.DNS != nil {
		d := DNS{Servers: slices.Clone(s.DNS.Servers), Searches: slices.Clone(s.DNS.Searches), Options: slices.Clone(s.DNS.Options)}
		c.DNS = &d
	}
	c.Ports = slices.Clone(s.Ports)
	if s.Bandwidth != nil {
		b := *s.Bandwidth
		c.Bandwidth = &b
	}
	c.Labels, c.Annotations, c.Sysctls = maps.Clone(s.Labels), maps.Clone(s.Annotations), maps.Clone(s.Sysctls)
	c.Resources = s.Resources.DeepCopy()
	if s.UserNS != nil {
		u := IDMappings{UIDs: slices.Clone(s.UserNS.UIDs), GIDs: slices.Clone(s.UserNS.GIDs)}
		c.UserNS = &u
	}
	for _, p := range []**int64{&c.RunAsUser, &c.RunAsGroup} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	c.SupplementalGroups = slices.Clone(s.SupplementalGroups)
	// Raw, the request as sent, is written once and only read: shared.
	return c
}

// List returns every sandbox the CRI may see, oldest first.
func (m *Manager) List() []*Sandbox { return m.records.ListVisible() }

// ListShared is List without the copies, for the list calls: the
// sandboxes are the manager's own, and must not be changed.
func (m *Manager) ListShared() []*Sandbox { return m.records.Shared() }

// Each calls f with every sandbox, those being created included, as the
// manager holds them (unsorted, not copied) under its read lock, for sums
// over the node: f must not change them or call the manager.
func (m *Manager) Each(f func(*Sandbox)) { m.records.Each(f) }

// forget drops a torn-down sandbox's record. The caller holds its lock.
func (m *Manager) forget(s *Sandbox) error { return m.records.Delete(s) }

// bootID tells one boot from the next (/run is not always a tmpfs, so
// state there may outlive a reboot).
func bootID() string {
	data, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return failpoint.Override("BOOT_ID", strings.TrimSpace(string(data)))
}

// infraAlive says whether the recorded infra process still runs.
func (s *Sandbox) infraAlive() bool {
	if s.InfraPID == 0 {
		return false
	}
	start, err := proc.StartTicks(s.InfraPID)
	return err == nil && start == s.InfraStart
}

func (m *Manager) load(ctx context.Context) error {
	boot := bootID()
	recs, err := m.records.Load()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	var attached []string
	for _, s := range recs {
		switch {
		case s.Creating:
			log := logctx.From(logctx.With(ctx, "pod", s.ID))
			log.Info("Cleaning up a sandbox whose creation was interrupted")
			if err := m.teardown(ctx, s); err != nil {
				log.Error(err, "Clean-up of an interrupted sandbox failed; it will be tried again at the next start")
				known[s.ID] = true
				m.records.Adopt(s)
				continue
			}
			m.records.Drop(s.ID)
			continue
		case s.BootID != boot:
			// After a reboot no namespace, mount or process is left.
			s.State, s.NS, s.InfraPID, s.ShmMounted, s.BootID = NotReady, Namespaces{}, 0, false, boot
			m.opts.Store.Put(store.BucketSandboxes, s.ID, s)
		case s.State == Ready && !m.opts.Kernel.Holds(s):
			logctx.From(logctx.With(ctx, "pod", s.ID)).Info("Sandbox lost its namespaces or infra process while crid was down")
			s.State = NotReady
			m.opts.Store.Put(store.BucketSandboxes, s.ID, s)
		}
		known[s.ID] = true
		m.records.Adopt(s)
		if s.Attached {
			attached = append(attached, s.ID)
		}
	}
	// Attachments the CNI cache holds for sandboxes no record names.
	if err := m.opts.CNI.GC(ctx, attached); err != nil {
		klog.ErrorS(err, "CNI garbage collection failed")
	}
	// Directories no record names: a crash before the first record.
	entries, _ := os.ReadDir(m.sandboxesDir())
	for _, e := range entries {
		if !known[e.Name()] {
			dir := filepath.Join(m.sandboxesDir(), e.Name())
			if err := m.opts.Kernel.RemoveDir(dir); err != nil { // pins and /dev/shm too
				klog.ErrorS(err, "Removing a sandbox directory no record names", "dir", dir)
			}
		}
	}
	return nil
}

// isZombie says whether pid has exited and waits only to be collected.
func isZombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
