package sandbox

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// InfraCommand is the hidden crid subcommand that runs a pod's infra
// process.
const InfraCommand = "infra"

// RunInfra is a pod's infra process: PID 1 of the pod's shared PID
// namespace. It names the host, brings up lo when the pod has its own
// network, reaps every orphan the pod's containers leave (the job of a PID
// 1), and exits 0 on SIGTERM or SIGINT. It runs until then, whatever
// happens to crid.
func RunInfra(hostname string, ownNet bool) int {
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			fmt.Fprintln(os.Stderr, "infra: set hostname:", err)
			return 1
		}
	}
	if ownNet {
		if err := loopbackUp(); err != nil {
			fmt.Fprintln(os.Stderr, "infra:", err)
			return 1
		}
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	// Tell the parent the namespaces are ready to pin.
	os.Stdout.WriteString("ready\n")
	os.Stdout.Close()
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return 0
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}
