package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockFile is the file under the root dir that one crid holds locked for
// as long as it runs.
const LockFile = "crid.lock"

// InUseError says the root dir is locked by another process.
type InUseError struct {
	Dir  string
	PID  int    // 0 when the holder did not write its PID
	Comm string // the holder's command name, when it could be read
}

func (e *InUseError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
		if e.Comm != "" {
			who += " (" + e.Comm + ")"
		}
	}
	return fmt.Sprintf("%s is in use by %s, which holds %s; stop it, or give this crid another directory",
		e.Dir, who, filepath.Join(e.Dir, LockFile))
}

// orphanWait is how long LockDir waits for a lock whose holder is gone.
const orphanWait = 5 * time.Second

// LockDir takes the exclusive lock of dir without waiting for a live
// holder. The lock is an
// flock, so it goes with the process: a crid killed with -9 leaves a file
// that the next crid locks again without any clean-up.
func LockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	// A crid killed while it forked a child (a monitor, a CNI plugin)
	// leaves the child holding the lock's descriptor until it execs and
	// its close-on-exec closes it: a restart in that moment waits it out.
	// A holder that is alive is another crid: refused at once.
	deadline := time.Now().Add(orphanWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		e := holder(dir, f)
		if e.PID == 0 || unix.Kill(e.PID, 0) == nil || time.Now().After(deadline) {
			f.Close()
			return nil, e
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The PID is written after the lock is taken, so a reader that finds
	// the lock held and the file empty is looking at a holder mid-start.
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("write pid to %s: %w", path, err)
		}
	}
	return f, nil
}

func holder(dir string, f *os.File) *InUseError {
	e := &InUseError{Dir: dir}
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n]))); err == nil && pid > 0 {
		e.PID = pid
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
			e.Comm = strings.TrimSpace(string(comm))
		}
	}
	return e
}
