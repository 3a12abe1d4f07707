package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/reexec"
)

// The helpers crid-podmon runs from the sealed crid-monitor binary.
const (
	StartCommand  = "start"
	ExitedCommand = "exited"
)

// The descriptors crid-podmon gives the start helper: the answer socket,
// then the container's stdin, stdout and stderr (its 0 and 1 are
// /dev/null, its stderr the monitor's log).
const (
	startAnswerFD = 3
	startStdinFD  = 4
	startStdoutFD = 5
	startStderrFD = 6
)

// StartAnswer is the start helper's one message to crid-podmon, with the
// terminal's master attached (SCM_RIGHTS) when the container has one.
type StartAnswer struct {
	Pid int `json:"pid,omitempty"`
	// OOMBefore is the cgroup's OOM kill count before the start: an exit
	// after more kills than that was an OOM kill.
	OOMBefore uint64 `json:"oomBefore,omitempty"`
	// Cgroup is the container's cgroup path, handed back to the exit
	// helper so it need not read the spec again.
	Cgroup string `json:"cgroup,omitempty"`
	// Members are the files that list the cgroup's processes (a v1
	// hierarchy's tasks, v2's cgroup.procs) and OOMFile the one that
	// counts its OOM kills. crid-podmon reads them at the exit and runs
	// the exit helper only when the container left processes to kill or
	// the kernel OOM-killed in it: the common exit then costs no exec of
	// a Go binary (about 4 ms of a StopContainer).
	Members []string `json:"members,omitempty"`
	OOMFile string   `json:"oomFile,omitempty"`
	Error   string   `json:"error,omitempty"`
	Kind    string   `json:"kind,omitempty"`
}

// RunStart is the start helper: it starts the container whose bundle
// holds config.json (and the compiled seccomp filter, when crid made one)
// through the executor, tells crid-podmon its pid and exits, which leaves
// the container to crid-podmon, its subreaper. The container gets the
// stdio crid-podmon made for it, or a terminal whose master goes back.
func RunStart(bundle string) int {
	// Nothing of crid-podmon's may reach the container.
	for _, fd := range []int{startAnswerFD, startStdinFD, startStdoutFD, startStderrFD} {
		unix.CloseOnExec(fd)
	}
	conn := os.NewFile(startAnswerFD, "answer")
	ans, console := start(bundle)
	data, _ := json.Marshal(ans)
	var rights []byte
	if console != nil {
		rights = unix.UnixRights(int(console.Fd()))
	}
	if err := unix.Sendmsg(int(conn.Fd()), append(data, '\n'), rights, nil, 0); err != nil {
		fmt.Fprintln(os.Stderr, "monitor: answer the start of", bundle+":", err)
		return 1
	}
	return 0
}

func start(bundle string) (StartAnswer, *os.File) {
	fail := func(err error) (StartAnswer, *os.File) {
		return StartAnswer{Error: err.Error(), Kind: errdefs.Kind(err)}, nil
	}
	data, prog, err := executor.ReadBundle(bundle)
	if err != nil {
		return fail(err)
	}
	spec, err := executor.ParseConfig(data)
	if err != nil {
		return fail(fmt.Errorf("config.json: %w", err))
	}
	spec.SeccompProgram = prog
	mounts, cg, err := containerCgroup(spec.Linux.CgroupsPath)
	if err != nil {
		return fail(err)
	}
	ans := StartAnswer{Cgroup: spec.Linux.CgroupsPath, Members: cg.JoinFiles(), OOMFile: cg.OOMKillsFile()}
	ans.OOMBefore, _ = cg.OOMKills()
	// With a terminal the executor hands back its master, which carries
	// input and output both; without one, the container gets the pipes.
	var stdio executor.Stdio
	if !spec.Process.Terminal {
		stdio = executor.Stdio{
			Stdin:  os.NewFile(startStdinFD, "stdin"),
			Stdout: os.NewFile(startStdoutFD, "stdout"),
			Stderr: os.NewFile(startStderrFD, "stderr"),
		}
	}
	// The init is born in its cgroup (v2), or puts itself there before it
	// has a second thread (v1): either spares the kernel the
	// synchronize_rcu of moving it there.
	opts := executor.Options{CgroupJoin: cg.JoinFiles(), CgroupMounts: mounts}
	if dir, err := cg.CloneInto(); err == nil {
		defer dir.Close()
		opts.CgroupDir = dir
	}
	p, err := executor.StartConfig(reexec.Self(), spec, stdio, opts)
	if err != nil {
		return fail(err)
	}
	ans.Pid = p.Pid
	p.Release() // crid-podmon collects it
	return ans, p.Console
}

// containerCgroup is the manager of a container's cgroup, from the host's
// cgroup mounts as crid read them (cgroups.MountsEnv), or from mountinfo.
func containerCgroup(path string) (string, cgroups.Manager, error) {
	mounts := os.Getenv(cgroups.MountsEnv)
	if mounts == "" {
		var err error
		if mounts, err = cgroups.Mounts(); err != nil {
			return "", nil, err
		}
	}
	h, err := cgroups.DiscoverFrom(mounts)
	if err != nil {
		return "", nil, err
	}
	cg, err := h.Manager(path)
	return mounts, cg, err
}

// RunExited is the exit helper: crid-podmon runs it when a container's
// process has exited and left processes in its cgroup or was OOM-killed
// (or it could not tell; StartAnswer.Members), with the bundle, the OOM
// kill count at the start, the pid, the wait status and the time of the
// exit (ns since the epoch). It kills what the container left in its
// cgroup, says whether the kernel killed it for want of memory and what
// filled the memory, and writes the exit record on stdout; crid-podmon
// writes it to the bundle once the container's output is all logged.
func RunExited(args []string) int {
	if len(args) != 6 {
		fmt.Fprintln(os.Stderr, "monitor: exited BUNDLE CGROUP OOM-BEFORE PID STATUS FINISHED-NS")
		return 2
	}
	bundle, cgroup := args[0], args[1]
	oomBefore, err1 := strconv.ParseUint(args[2], 10, 64)
	pid, err2 := strconv.Atoi(args[3])
	status, err3 := strconv.Atoi(args[4])
	ns, err4 := strconv.ParseInt(args[5], 10, 64)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			fmt.Fprintln(os.Stderr, "monitor: exited:", err)
			return 2
		}
	}
	ws := syscall.WaitStatus(status)
	e := Exit{Pid: pid, FinishedAt: time.Unix(0, ns).UTC()}
	if ws.Signaled() {
		e.Signal = int(ws.Signal())
		e.ExitCode = 128 + e.Signal
	} else {
		e.ExitCode = ws.ExitStatus()
	}
	if _, cg, err := containerCgroup(cgroup); err != nil {
		fmt.Fprintln(os.Stderr, "monitor: exit of", bundle+":", err)
	} else {
		if n, err := cg.OOMKills(); err == nil && n > oomBefore {
			e.OOMKilled = true
			e.OOM = (*OOMWatch)(nil).Report(cg, 0)
		}
		// A container ends with its main process. What it leaves in its
		// cgroup (a wrapper script's server, a daemon that ignored
		// SIGTERM, an exec) is killed before the exit is recorded: in a
		// pod's shared PID namespace nothing else would end them (they
		// are reparented to the pod's infra process), they would hold
		// the output pipes open, and the pod could never be removed. As
		// runc's kill --all does: cgroup.kill on v2, freeze, kill, thaw
		// on v1.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := cg.KillAll(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "monitor: kill what", bundle, "left:", err)
		}
		cancel()
	}
	if err := json.NewEncoder(os.Stdout).Encode(e); err != nil {
		return 1
	}
	return 0
}
