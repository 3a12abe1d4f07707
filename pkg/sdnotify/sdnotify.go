// Package sdnotify tells a service manager how crid is doing, by the
// sd_notify(3) protocol: a datagram of newline-separated KEY=VALUE lines to
// the unix socket named by $NOTIFY_SOCKET. The unit crid ships
// (deploy/systemd/crid.service) is Type=notify, so systemd, and a kubeadm
// node's kubelet ordered After= it, takes crid as started only once it
// sends READY=1, which it does when its CRI socket serves.
//
// The protocol is a few lines; libsystemd is not needed for it and would
// need cgo.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// The states crid sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notifier sends states to one notify socket. Its zero value, or one made
// where $NOTIFY_SOCKET is unset, sends nothing: crid run by hand or by a
// test.
type Notifier struct {
	addr string
}

// FromEnv returns the notifier of $NOTIFY_SOCKET and unsets it, so that no
// process crid starts (its monitors, hooks, containers) can speak for crid.
func FromEnv() Notifier {
	n := Notifier{addr: os.Getenv("NOTIFY_SOCKET")}
	os.Unsetenv("NOTIFY_SOCKET")
	return n
}

// Enabled says whether a service manager listens.
func (n Notifier) Enabled() bool { return n.addr != "" }

// Notify sends the states, one per line, as one datagram.
func (n Notifier) Notify(states ...string) error {
	if n.addr == "" {
		return nil
	}
	addr := n.addr
	// A name beginning with @ is in the abstract namespace (systemd uses
	// these for containers' notify sockets); Go writes it with a leading @
	// too, and turns it into the NUL the kernel wants.
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return fmt.Errorf("NOTIFY_SOCKET %q: neither a path nor an abstract name (@...)", addr)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify %s: %w", addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("notify %s: %w", addr, err)
	}
	return nil
}
