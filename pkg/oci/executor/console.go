package executor

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A container with a terminal gets its pseudo-terminal from its own devpts
// instance, made by its init after pivot_root (so `tty` in the container
// names /dev/pts/0, and no host pty number leaks in). The init makes the
// slave its controlling terminal and its stdio, and hands the master back
// over the sync socket, marked by a leading zero byte: an error message
// never starts with one.
const consoleMark = 0

// openConsole makes the init's pseudo-terminal and returns its master.
// The init is a session leader already (Start asks for setsid).
func openConsole(p *specs.Process) (int, error) {
	master, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the container's /dev/pts/ptmx: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(master)
		return -1, fmt.Errorf("console: %s: %w", what, err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock", err)
	}
	// TIOCGPTPEER opens the slave through the master, never by a path
	// the container could have replaced.
	slave, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return fail("open the slave", errno)
	}
	defer unix.Close(int(slave))
	if err := unix.Fchown(int(slave), int(p.User.UID), -1); err != nil {
		return fail("chown the slave", err)
	}
	if p.ConsoleSize != nil {
		ws := &unix.Winsize{Row: uint16(p.ConsoleSize.Height), Col: uint16(p.ConsoleSize.Width)}
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, ws); err != nil {
			return fail("set size", err)
		}
	}
	if err := unix.IoctlSetInt(int(slave), unix.TIOCSCTTY, 0); err != nil {
		return fail("make it the controlling terminal", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(slave), fd, 0); err != nil {
			return fail("make it stdio", err)
		}
	}
	return master, nil
}

// sendConsole hands the master to Start.
func sendConsole(sync *os.File, master int) error {
	return unix.Sendmsg(int(sync.Fd()), []byte{consoleMark}, unix.UnixRights(master), nil, 0)
}

// recvConsole takes the master from the init. When setup failed before
// the console existed, the init's error comes instead: it is returned
// with the bytes read so far.
func recvConsole(sync *os.File) (*os.File, []byte, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	// Through the poller (sync.Fd would make the descriptor blocking).
	raw, err := sync.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var n, oobn int
	rerr := raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, err = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return err != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("receive the console: %w", err)
	}
	if n == 0 {
		return nil, nil, errors.New("container init ended before making its console")
	}
	if buf[0] != consoleMark {
		return nil, buf[:n], nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, nil, errors.New("receive the console: no descriptor came with it")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, nil, errors.New("receive the console: no descriptor came with it")
	}
	return os.NewFile(uintptr(fds[0]), "console"), nil, nil
}
