package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Launch is how to start a container's init without StartConfig: what
// crid-podmon does itself, in C, so that a start costs one Go process
// (the init) rather than two (a starter and the init), about 2 ms of
// exec and runtime start on this machine. The starter clones with Clone
// from the PID namespace JoinPID (when set), and the child, before it
// execs the init with descriptor 3 its end of a socket pair:
//
//  1. makes a session of its own (setsid);
//  2. writes OOMScoreAdj to /proc/self/oom_score_adj, as the host's root;
//  3. joins its cgroup (born in it with CLONE_INTO_CGROUP, or writes 0 to
//     each membership file while it has one thread);
//  4. joins each namespace in Join (setns, any type).
//
// The starter then writes the init its LaunchMessage and reads the socket
// to its end: nothing means the exec happened, a byte 0 with a descriptor
// is a terminal's master (consoleMark), anything else is the init's error
// (specErrorPrefix marks the spec's fault).
//
// A container in a user namespace is started through StartConfig: its
// bind mounts are idmapped by the host's root and handed to the init, and
// its namespaces are made inside the user namespace by the nsenter
// constructor.
type Launch struct {
	Clone       uintptr  `json:"clone"`
	JoinPID     string   `json:"joinPid,omitempty"`
	Join        []string `json:"join,omitempty"`
	OOMScoreAdj *int     `json:"oomScoreAdj,omitempty"`
	Terminal    bool     `json:"terminal,omitempty"`
}

// ErrNeedsStartConfig says a spec's init must be started by StartConfig.
var ErrNeedsStartConfig = errors.New("the container's init needs StartConfig")

// PlanLaunch is the Launch of spec's init; ErrNeedsStartConfig when it
// has a user namespace or ID-mapped mounts (which StartConfig refuses
// without one), or another error StartConfig would give.
func PlanLaunch(spec *specs.Spec) (Launch, error) {
	if spec.Process == nil || spec.Linux == nil {
		return Launch{}, errors.New("spec has no process or no linux section")
	}
	for _, m := range spec.Mounts {
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			return Launch{}, ErrNeedsStartConfig
		}
	}
	cfg := &Config{}
	cfg.Linux.Namespaces = spec.Linux.Namespaces
	ns, err := planNamespaces(cfg)
	if err != nil {
		return Launch{}, err
	}
	if ns.userns != "" {
		return Launch{}, ErrNeedsStartConfig
	}
	l := Launch{Clone: ns.clone, OOMScoreAdj: spec.Process.OOMScoreAdj, Terminal: spec.Process.Terminal}
	for _, n := range ns.join {
		if n.Type == specs.PIDNamespace {
			// setns to a PID namespace changes only where the caller's
			// next children are born: the starter joins it, not the child.
			l.JoinPID = n.Path
			continue
		}
		l.Join = append(l.Join, n.Path)
	}
	return l, nil
}

// LaunchMessage is what a Launch's starter writes the init: the bundle
// whose config.json (and SeccompProgramFile) it reads, and the host's
// cgroup mounts (Options.CgroupMounts), when the starter has them.
type LaunchMessage struct {
	Bundle       string `json:"bundle"`
	CgroupMounts string `json:"cgroupMounts,omitempty"`
}

// loadBundle fills in what a Launch's starter leaves to the init: the
// spec, its compiled seccomp filter and the rootfs's detached clone,
// which the init makes itself, from the copy of the host's mounts its new
// mount namespace holds (StartConfig makes it in the host's).
func loadBundle(cfg *initConfig) error {
	data, prog, err := ReadBundle(cfg.Bundle)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &cfg.Spec); err != nil || cfg.Spec == nil {
		return fmt.Errorf("decode %s/config.json: %v", cfg.Bundle, err)
	}
	if cfg.Spec.Process == nil || len(cfg.Spec.Process.Args) == 0 || cfg.Spec.Root == nil || cfg.Spec.Linux == nil {
		return errors.New("spec has no process, root or linux section")
	}
	cfg.SeccompProgram = prog
	cfg.RootFD, err = cloneRootfs(cfg.Spec.Root.Path)
	return err
}

// ReadBundle reads a bundle's spec (config.json) and the seccomp filter
// crid compiled for it (SeccompProgramFile), nil when it made none: the
// init then loads that rather than compiling the profile.
func ReadBundle(dir string) (spec, seccompProgram []byte, err error) {
	if spec, err = os.ReadFile(filepath.Join(dir, "config.json")); err != nil {
		return nil, nil, err
	}
	seccompProgram, _ = os.ReadFile(filepath.Join(dir, SeccompProgramFile))
	return spec, seccompProgram, nil
}

// cloneRootfs is a detached clone of the rootfs at path, with its mounts,
// for the init to attach (prepareRootfs).
func cloneRootfs(path string) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("clone rootfs %s: %w", path, err)
	}
	return fd, nil
}
