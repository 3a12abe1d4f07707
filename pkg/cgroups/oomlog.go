package cgroups

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// OOMVictim is what the kernel's log says of an OOM kill: the process it
// chose, and whose limit ran out (the container's cgroup, or a parent's,
// such as a pod's with pod-level limits).
type OOMVictim struct {
	Pid  int    `json:"pid"`
	Comm string `json:"comm"`
	// LimitCgroup is the cgroup whose limit was hit (oom_memcg); TaskCgroup
	// the victim's (task_memcg). Paths are the memory hierarchy's.
	LimitCgroup string `json:"limitCgroup"`
	TaskCgroup  string `json:"taskCgroup"`
}

// FindOOMVictim reads the kernel's log (/dev/kmsg, which root may read;
// each read is one record) for the last OOM kill of a process in cgroup,
// or under it. None found is no error: the log may have wrapped.
func FindOOMVictim(cgroup string) (*OOMVictim, error) {
	// Raw reads, not an *os.File: Go would park a non-blocking read in
	// its poller until a new record came, where the end of the log must
	// answer EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var last *OOMVictim
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err == nil && n == 0 {
			err = io.EOF
		}
		if err != nil {
			// EAGAIN: the end of the log; EPIPE: a record was
			// overwritten while reading, go on with the next.
			if errors.Is(err, syscall.EPIPE) {
				continue
			}
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, io.EOF) {
				return last, nil
			}
			return last, err
		}
		if v, ok := ParseOOMKillRecord(string(buf[:n])); ok && under(v.TaskCgroup, cgroup) {
			last = v
		}
	}
}

// ParseOOMKillRecord reads the kernel's one-line summary of an OOM kill
// (mm/oom_kill.c dump_oom_victim, Linux 4.19+), as /dev/kmsg gives it:
//
//	6,1234,5678,-;oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/a,task_memcg=/a/b,task=sh,pid=12,uid=0
func ParseOOMKillRecord(record string) (*OOMVictim, bool) {
	if _, msg, ok := strings.Cut(record, ";"); ok {
		record = msg
	}
	record = strings.TrimRight(record, "\n")
	fields, ok := strings.CutPrefix(record, "oom-kill:")
	if !ok {
		return nil, false
	}
	v := &OOMVictim{}
	sc := bufio.NewScanner(strings.NewReader(fields))
	sc.Split(splitComma)
	for sc.Scan() {
		k, val, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "oom_memcg":
			v.LimitCgroup = val
		case "task_memcg":
			v.TaskCgroup = val
		case "task":
			v.Comm = val
		case "pid":
			v.Pid, _ = strconv.Atoi(val)
		}
	}
	return v, v.Pid > 0
}

func splitComma(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == ',' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// under says whether p is cgroup or a descendant of it.
func under(p, cgroup string) bool {
	return p == cgroup || strings.HasPrefix(p, strings.TrimSuffix(cgroup, "/")+"/")
}
