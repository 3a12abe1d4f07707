package container

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// State is a container's CRI state.
type State string

const (
	Created State = "created"
	Running State = "running"
	Exited  State = "exited"
)

// Container is a container's record.
type Container struct {
	ID        string `json:"id"`
	SandboxID string `json:"sandboxID"`
	Name      string `json:"name"`
	Attempt   uint32 `json:"attempt"`

	Image       string            `json:"image"`   // as the request named it
	ImageID     string            `json:"imageID"` // config digest
	ImageRef    string            `json:"imageRef"`
	ChainIDs    []string          `json:"chainIDs"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	LogPath     string            `json:"logPath,omitempty"`
	Raw         json.RawMessage   `json:"raw,omitempty"`

	Bundle     string `json:"bundle"` // config.json, rootfs mount point, exit.json
	Layer      string `json:"layer"`  // upper and work dirs
	Cgroup     string `json:"cgroup"`
	MonitorDir string `json:"monitorDir"`
	Stdin      bool   `json:"stdin,omitempty"`
	StdinOnce  bool   `json:"stdinOnce,omitempty"`
	Tty        bool   `json:"tty,omitempty"`
	StopSignal int    `json:"stopSignal,omitempty"`

	State State `json:"state"`
	// Creating is set from the record's first write until Commit: a
	// record found so at start-up is a crash halfway, undone and
	// forgotten; meanwhile the CRI does not see it.
	Creating   bool      `json:"creating,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitempty"`
	Pid        int       `json:"pid,omitempty"`
	ExitCode   int32     `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	// Mounted is set before the root filesystem is mounted (and image
	// volumes under the bundle): teardown unmounts.
	Mounted bool `json:"mounted,omitempty"`

	// Image volumes mounted under the bundle, by mount index, and the
	// images they are (for status).
	ImageVolumes map[int]string `json:"imageVolumes,omitempty"`

	// Who the process runs as, as resolved against the image at create.
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`

	// OOM is what filled the memory when the container was OOM-killed.
	OOM *monitor.OOMReport `json:"oom,omitempty"`

	// Resources are the cgroup limits last applied (at create, or by an
	// update), for those asking what the container is given.
	Resources *cgroups.Resources `json:"resources,omitempty"`
}

// Key is the name a container reserves in its pod.
func (c *Container) Key() string { return fmt.Sprintf("%s_%s_%d", c.SandboxID, c.Name, c.Attempt) }

// Rootfs is where the container's root is mounted on the host.
func (c *Container) Rootfs() string { return filepath.Join(c.Bundle, "rootfs") }

// TerminationLog is the host file behind termination_message_path.
func (c *Container) TerminationLog() string { return filepath.Join(c.Bundle, "termination-log") }

// SpecFile is the container's runtime spec, which the executor runs (the
// OCI bundle's config.json).
func (c *Container) SpecFile() string { return filepath.Join(c.Bundle, "config.json") }

// Spec reads the runtime spec the container was committed with.
func (c *Container) Spec() (*specs.Spec, error) {
	data, err := os.ReadFile(c.SpecFile())
	if err != nil {
		return nil, fmt.Errorf("spec of container %s: %w", c.ID, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("spec of container %s: %w", c.ID, err)
	}
	return &s, nil
}

func (c *Container) imageVolumeDir(i int) string {
	return filepath.Join(c.Bundle, "image-volumes", fmt.Sprint(i))
}

// The records.Record methods.
func (c *Container) RecordID() string        { return c.ID }
func (c *Container) ReservedName() string    { return c.Key() }
func (c *Container) InCreation() bool        { return c.Creating }
func (c *Container) CreationTime() time.Time { return c.CreatedAt }

// DeepCopy returns a copy of c that shares nothing with it that anyone
// changes.
func (c *Container) DeepCopy() *Container {
	d := *c
	d.ChainIDs = slices.Clone(c.ChainIDs)
	d.Labels = maps.Clone(c.Labels)
	d.Annotations = maps.Clone(c.Annotations)
	// Raw, the request as the kubelet sent it (kilobytes), is written once
	// at create and only ever read: copies share it, or every listing
	// (the kubelet's relist, each second) would copy it for every
	// container.
	d.ImageVolumes = maps.Clone(c.ImageVolumes)
	d.Groups = slices.Clone(c.Groups)
	d.Resources = c.Resources.DeepCopy()
	if c.OOM != nil {
		o := *c.OOM
		if c.OOM.Victim != nil {
			v := *c.OOM.Victim
			o.Victim = &v
		}
		d.OOM = &o
	}
	return &d
}
