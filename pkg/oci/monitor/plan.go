package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/oci/executor"
)

// StartPlanFile is where a bundle keeps its StartPlan, beside config.json.
const StartPlanFile = "start.json"

// StartPlan is a container's start worked out when it is created, so that
// crid-podmon starts the init itself (executor.Launch) and no start
// helper runs: the helper was a second Go process per start, about 2 ms
// of exec and runtime start before it did anything. A bundle without one
// (a user namespace, or a bundle of a crid before it) is started by the
// helper, as before.
type StartPlan struct {
	executor.Launch
	// Cgroup is the container's cgroup path, for the exit helper.
	Cgroup string `json:"cgroup"`
	// CgroupDir is the cgroup's directory on v2, where the init is born
	// (CLONE_INTO_CGROUP); on v1 it joins Members itself.
	CgroupDir string `json:"cgroupDir,omitempty"`
	// Members and OOMFile are StartAnswer's.
	Members []string `json:"members"`
	OOMFile string   `json:"oomFile,omitempty"`
}

// WriteStartPlan writes the StartPlan of the container whose spec and
// cgroup are given into its bundle, or, for a spec the helper must start,
// makes sure there is none. A spec the executor would refuse gets none
// either: the helper's start reports why, as it always has.
func WriteStartPlan(bundle string, spec *specs.Spec, cg cgroups.Manager) error {
	path := filepath.Join(bundle, StartPlanFile)
	l, err := executor.PlanLaunch(spec)
	if err != nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	p := StartPlan{Launch: l, Cgroup: spec.Linux.CgroupsPath, Members: cg.JoinFiles(), OOMFile: cg.OOMKillsFile()}
	if dir, err := cg.CloneInto(); err == nil {
		p.CgroupDir = dir.Name()
		dir.Close()
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
