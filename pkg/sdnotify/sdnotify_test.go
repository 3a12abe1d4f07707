package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"path", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify") }},
		{"abstract", func(t *testing.T) string { return fmt.Sprintf("@crid-sdnotify-test-%d", os.Getpid()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.addr(t)
			c := listen(t, addr)
			t.Setenv("NOTIFY_SOCKET", addr)
			n := FromEnv()
			if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				t.Errorf("FromEnv left NOTIFY_SOCKET=%q for crid's children", v)
			}
			if !n.Enabled() {
				t.Fatal("not enabled with NOTIFY_SOCKET set")
			}
			if err := n.Notify(Ready, "STATUS=serving"); err != nil {
				t.Fatal(err)
			}
			if got, want := receive(t, c), "READY=1\nSTATUS=serving\n"; got != want {
				t.Errorf("sent %q, want %q", got, want)
			}
		})
	}
}

func TestNotifyWithoutAManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n.Enabled() {
		t.Error("enabled without NOTIFY_SOCKET")
	}
	if err := n.Notify(Ready); err != nil {
		t.Errorf("Notify without a manager: %v", err)
	}
}

func TestNotifyRefusesAnAddressThatIsNeither(t *testing.T) {
	n := Notifier{addr: "relative/notify"}
	if err := n.Notify(Ready); err == nil {
		t.Error("a relative NOTIFY_SOCKET was taken")
	}
	n = Notifier{addr: filepath.Join(t.TempDir(), "absent")}
	if err := n.Notify(Ready); err == nil {
		t.Error("a socket nobody listens on was taken")
	}
}
