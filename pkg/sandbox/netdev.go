package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/crid-dev/crid/pkg/netns"
)

// Interface is a line of /proc/net/dev: a name and its 16 counters
// (receive bytes, packets, errs, drop, fifo, frame, compressed, multicast,
// then transmit bytes, packets, errs, drop, fifo, colls, carrier,
// compressed).
type Interface struct {
	Name     string
	Counters [16]uint64
}

// Interfaces reads the counters of the pod's interfaces but loopback,
// inside its network namespace (/proc/thread-self/net/dev follows the
// thread's); none for a pod on the host's network, the node's to report.
func Interfaces(sb *Sandbox) ([]Interface, error) {
	if sb.NS.Net == "" {
		return nil, nil
	}
	var out []Interface
	err := netns.InNet(sb.NS.Net, func() error {
		f, err := os.Open("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		defer f.Close()
		out, err = parseNetDev(f)
		return err
	})
	return out, err
}

// parseNetDev reads /proc/net/dev, leaving out loopback and the headers.
func parseNetDev(r io.Reader) ([]Interface, error) {
	var out []Interface
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" {
			continue
		}
		i := Interface{Name: name}
		v := &i.Counters
		if n, _ := fmt.Sscan(rest, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11], &v[12], &v[13], &v[14], &v[15]); n != 16 {
			continue
		}
		out = append(out, i)
	}
	return out, sc.Err()
}
