// Package monitor is crid's side of a pod's monitor, the process that
// watches over the pod's containers while crid may come and go: one per
// pod, in a session of its own and holding none of crid's files. It is
// the parent, and the child subreaper, of the pod's container processes:
// it starts them, copies their output into their logs in the CRI format,
// reopens logs on request, carries attach streams, and records each exit
// atomically in the container's bundle, so a crid that was killed finds
// every exit when it comes back.
//
// The monitor is crid-podmon, a small C program (cmd/crid-podmon), for
// the memory a process per pod costs: a Go process cannot go below about
// 0.6 MB of its own (docs/containers.md, "Memory per pod"). What it needs
// Go for runs from the sealed crid-monitor binary it is handed: the
// container's init, which it clones itself as the bundle's StartPlan
// says, and short-lived helpers: RunStart starts a bundle without a plan
// through the executor, RunExited makes an exit record. This package
// holds the protocol, the plan, the client, and those helpers.
//
// One monitor per pod rather than per container (conmon's choice) keeps
// the cost of a pod to one small process however many containers it has;
// it is asked over a unix socket in the pod's run dir (a path, never an
// abstract socket: CVE-2020-15257).
package monitor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/crid-dev/crid/pkg/reexec"
)

// Binaries are the sealed programs a pod's monitor runs: crid-podmon
// itself, and crid-monitor, whose start and exited helpers and container
// init it runs.
type Binaries struct {
	Monitor, Helper *reexec.Binary
}

// SocketName is the monitor's socket in its directory.
const SocketName = "monitor.sock"

// ExitFile is where a container's exit is recorded in its bundle.
const ExitFile = "exit.json"

// Request is one call to the monitor.
type Request struct {
	Op     string `json:"op"` // start, kill, reopen, resize, attach, shutdown
	ID     string `json:"id,omitempty"`
	Bundle string `json:"bundle,omitempty"` // holds config.json; exit.json is written there
	Log    string `json:"log,omitempty"`
	Signal int    `json:"signal,omitempty"`
	// Stdin gives the container a stdin pipe the monitor holds, for
	// attach; StdinOnce closes it when the first attached client leaves.
	Stdin     bool `json:"stdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"`
	// Width and Height are a terminal's new size, for resize.
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// Response answers a Request.
type Response struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	// Kind is the errdefs kind of Error, so a bad spec the init refused
	// reaches the kubelet as InvalidArgument, not Unknown.
	Kind string `json:"kind,omitempty"`
}

// Exit is a container's end.
type Exit struct {
	Pid        int       `json:"pid"`
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
	// OOM says what filled the memory, when OOMKilled.
	OOM *OOMReport `json:"oom,omitempty"`
}

// Frames an attached client receives: a stream byte, a big-endian length,
// the bytes.
const (
	FrameStdout byte = 1
	FrameStderr byte = 2
)

// WriteExit records a container's exit in its bundle, atomically: a reader
// sees no file or the whole of it. Tests of the managers play a monitor
// with it.
func WriteExit(bundle string, e Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, ExitFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, ExitFile))
}

// ReadExit reads a container's recorded exit; ok is false while it runs.
func ReadExit(bundle string) (Exit, bool, error) {
	data, err := os.ReadFile(filepath.Join(bundle, ExitFile))
	if errors.Is(err, os.ErrNotExist) {
		return Exit{}, false, nil
	}
	if err != nil {
		return Exit{}, false, err
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return Exit{}, false, err
	}
	return e, true, nil
}
