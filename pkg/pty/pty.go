// Package pty opens pseudo-terminals on the host's devpts and runs
// processes on them: for an exec with a TTY (crid) and for the client side
// of a test's attach.
package pty

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Open makes a pseudo-terminal pair on the host's devpts: the master,
// and the slave opened through its number.
func Open() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	sl, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, sl, nil
}

// Size is a terminal's size in characters.
type Size struct{ Width, Height uint16 }

// Run starts cmd on a new terminal (its controlling one, in a session of
// its own), copies in to the terminal and the terminal to out, applies
// each size from resize, and waits for cmd. What the process wrote
// before it exited is still in the terminal: it reaches out before Run
// returns, though a process it left holding the terminal is not waited
// for past grace. The caller owns cmd's Wait through Run.
func Run(cmd *exec.Cmd, in io.Reader, out io.Writer, resize <-chan Size, grace time.Duration) (wait func() error, err error) {
	master, slave, err := Open()
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		master.Close()
		return nil, err
	}
	// The caller closes resize when the session ends.
	go func() {
		for size := range resize {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
		}
	}()
	if in != nil {
		go io.Copy(master, in)
	}
	copied := make(chan struct{})
	go func() {
		if out != nil {
			io.Copy(out, master) // ends with EIO once no process holds the terminal
		}
		close(copied)
	}()
	return func() error {
		err := cmd.Wait()
		if out != nil {
			select {
			case <-copied:
			case <-time.After(grace):
			}
		}
		master.Close()
		return err
	}, nil
}
