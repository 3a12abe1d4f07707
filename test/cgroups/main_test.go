// Package cgroupstest runs crid's cgroup managers against the real kernel:
// OOM kills, CPU throttling, pid limits, stats, in-place updates and
// removal. On this host (cgroup v1, hybrid) it runs as a root test; for
// cgroup v2, test/cgroups/qemu.sh builds it as a static binary and boots it
// as the init of a Debian cloud kernel under qemu, where TestMain mounts
// the unified hierarchy, runs every test and powers the machine off.
package cgroupstest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/oci/executor"
	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// helperEnv makes the test binary act as a workload instead of running
// tests. The workload waits for a line on stdin, sent once its parent has
// moved it into the cgroup under test.
const helperEnv = "CRID_CGTEST_HELPER"

func TestMain(m *testing.M) {
	// The sealed copy of this binary is the init of the containers the
	// executor test starts.
	if len(os.Args) > 1 && os.Args[1] == executor.InitCommand {
		os.Exit(executor.Init())
	}
	// And of the pod monitor's helpers, in TestMonitorLaunchesIntoTheCgroup.
	if len(os.Args) > 2 && os.Args[1] == monitor.StartCommand {
		os.Exit(monitor.RunStart(os.Args[2]))
	}
	if len(os.Args) > 1 && os.Args[1] == monitor.ExitedCommand {
		os.Exit(monitor.RunExited(os.Args[2:]))
	}
	if h := os.Getenv(helperEnv); h != "" {
		bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(helper(h))
	}
	if os.Getpid() == 1 {
		os.Exit(runAsInit(m))
	}
	if os.Geteuid() != 0 {
		fmt.Println("cgroupstest: skipping every test: cgroups need root")
	}
	os.Exit(m.Run())
}

// runAsInit is the VM's init: it mounts what the tests need, runs them and
// powers off, printing a verdict line the host harness looks for.
func runAsInit(m *testing.M) int {
	// The initramfs's rootfs has no parent mount, so pivot_root (which the
	// executor's containers need) refuses it: a bind of it, moved over /
	// and chrooted into, is a root that has one, as switch_root makes.
	if err := os.MkdirAll("/newroot", 0o755); err == nil {
		if err := unix.Mount("/", "/newroot", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			fmt.Printf("init: bind /: %v\n", err)
		} else if err := unix.Chdir("/newroot"); err == nil {
			if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
				fmt.Printf("init: move the root: %v\n", err)
			} else if err := unix.Chroot("."); err != nil {
				fmt.Printf("init: chroot: %v\n", err)
			}
			unix.Chdir("/")
		}
	}
	mounts := []struct{ src, target, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"}, {"cgroup2", "/sys/fs/cgroup", "cgroup2"},
	}
	for _, mt := range mounts {
		os.MkdirAll(mt.target, 0o755)
		if err := unix.Mount(mt.src, mt.target, mt.fstype, 0, ""); err != nil && err != unix.EBUSY {
			fmt.Printf("init: mount %s: %v\n", mt.target, err)
		}
	}
	os.Setenv("PATH", "/bin")
	os.Setenv("TMPDIR", "/tmp")
	testingFlag("test.v", "true")
	code := m.Run()
	verdict := "PASS"
	if code != 0 {
		verdict = "FAIL"
	}
	fmt.Printf("\nCRID-CGROUP-TESTS: %s\n", verdict)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return code
}

func testingFlag(name, value string) {
	if f := flagLookup(name); f != nil {
		f.Value.Set(value)
	}
}

// helper runs one workload.
func helper(kind string) int {
	switch kind {
	case "alloc": // write FILL MiB to FILE, allocate and touch MIB, then sleep
		if f := os.Getenv("FILE"); f != "" {
			n, _ := strconv.Atoi(os.Getenv("FILL"))
			if err := os.WriteFile(f, make([]byte, n<<20), 0o600); err != nil {
				fmt.Println(err)
				return 1
			}
		}
		mib, _ := strconv.Atoi(os.Getenv("MIB"))
		var keep [][]byte
		for range mib {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated")
		time.Sleep(time.Hour)
		_ = keep
	case "spin":
		d, _ := time.ParseDuration(os.Getenv("SPIN"))
		end := time.Now().Add(d)
		for time.Now().Before(end) {
		}
	case "sleep":
		time.Sleep(time.Hour)
	case "cgroupfs": // what a container sees at /sys/fs/cgroup: names, memory.max, a write
		entries, _ := os.ReadDir("/sys/fs/cgroup")
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		max, err := os.ReadFile("/sys/fs/cgroup/memory.max")
		fmt.Printf("entries %d cgroup.controllers %v\n", len(names), slices.Contains(names, "cgroup.controllers"))
		fmt.Printf("memory.max %s %v\n", strings.TrimSpace(string(max)), err)
		werr := os.WriteFile("/sys/fs/cgroup/memory.high", []byte("max"), 0)
		fmt.Printf("write %v\n", werr != nil)
	case "open": // open each device in OPEN and say what came of it
		for _, p := range strings.Split(os.Getenv("OPEN"), ":") {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				fmt.Printf("%s %v\n", filepath.Base(p), errors.Unwrap(err))
				continue
			}
			f.Close()
			fmt.Printf("%s ok\n", filepath.Base(p))
		}
	case "forks": // start children until told how many, count refusals
		n, _ := strconv.Atoi(os.Getenv("FORKS"))
		started, failed := 0, 0
		var kids []*exec.Cmd
		for range n {
			c := exec.Command("/proc/self/exe")
			c.Env = append(os.Environ(), helperEnv+"=sleep")
			if err := c.Start(); err != nil {
				failed++
				continue
			}
			started++
			kids = append(kids, c)
		}
		fmt.Printf("started %d failed %d\n", started, failed)
		for _, k := range kids {
			k.Process.Kill()
			k.Wait()
		}
	}
	return 0
}
