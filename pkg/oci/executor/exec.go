package executor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/oci/nsenter"
	"github.com/crid-dev/crid/pkg/reexec"
)

// ExecCommand is the hidden crid subcommand that becomes a process in a
// running container.
const ExecCommand = "exec"

// ExecCmd prepares a process to run in the running container whose init
// is pid: the nsenter constructors join its cgroups (cgroupJoin, the
// cgroup's membership files, cgroups.Manager.JoinFiles) and namespaces
// before Go starts, and ExecInit
// then takes on the process's user, capabilities and working dir.
// Starting, waiting and stopping are the caller's: SIGTERM to it kills and
// reaps the process in the container; SIGKILL kills it too, leaving its
// zombie to the container's init.
func ExecCmd(bin *reexec.Binary, pid int, cgroupJoin []string, p *specs.Process, sc *specs.LinuxSeccomp, prog []byte) (*exec.Cmd, error) {
	es := execSpec{Process: p, Seccomp: sc}
	if prog != nil {
		es = execSpec{Process: p, SeccompProgram: prog}
	}
	data, err := json.Marshal(es)
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// The spec fits the pipe's buffer many times over: write it now, and
	// the exec reads it whenever it gets there.
	if _, err := w.Write(append(data, '\n')); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	cmd := bin.Command(ExecCommand)
	cmd.ExtraFiles = []*os.File{r}
	cmd.Env = []string{
		fmt.Sprintf("%s=%d", nsenter.PidEnv, pid),
		nsenter.CgroupJoinEnv + "=" + strings.Join(cgroupJoin, ":"),
	}
	return cmd, nil
}

// execSpec is what ExecInit is told: the process, and the container's
// seccomp filter, which binds every process of the container.
type execSpec struct {
	Process *specs.Process      `json:"process"`
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	// SeccompProgram is Seccomp compiled (seccomp.Compile): sent instead
	// of it when the caller has it, so an exec (a probe, every few
	// seconds) does not compile the profile each time.
	SeccompProgram []byte `json:"seccompProgram,omitempty"`
}

// ExecInit runs in the container's namespaces (see ExecCmd): it reads the
// process spec from fd 3, takes on its identity and execs it.
func ExecInit() int {
	runtime.LockOSThread()
	in := os.NewFile(3, "exec-spec")
	line, err := bufio.NewReader(in).ReadBytes('\n')
	in.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crid exec: read spec:", err)
		return 126
	}
	var es execSpec
	if err := json.Unmarshal(line, &es); err != nil || es.Process == nil {
		fmt.Fprintln(os.Stderr, "crid exec: decode spec:", err)
		return 126
	}
	p := *es.Process
	if len(p.Args) == 0 {
		fmt.Fprintln(os.Stderr, "crid exec: no command")
		return 126
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	// Joining the mount namespace made its root this process's root; the
	// working dir is resolved inside it and checked, as the init's is.
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = enterWorkingDir(root, cwd, false)
		unix.Close(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crid exec:", err)
		return 126
	}
	argv0, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crid exec:", err)
		return 127
	}
	if err := setRlimits(p.Rlimits); err != nil {
		fmt.Fprintln(os.Stderr, "crid exec:", err)
		return 126
	}
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "crid exec:", err)
		return 126
	}
	if err := confine(&p, es.Seccomp, es.SeccompProgram); err != nil {
		fmt.Fprintln(os.Stderr, "crid exec:", err)
		return 126
	}
	err = unix.Exec(argv0, p.Args, p.Env)
	fmt.Fprintf(os.Stderr, "crid exec: exec %s: %v\n", p.Args[0], err)
	return 126
}
