package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// run interprets a device program on one access, as the kernel would.
func run(t *testing.T, prog []bpfInsn, devType, access, major, minor uint32) uint64 {
	t.Helper()
	var reg [11]uint64
	ctx := [3]uint32{access<<16 | devType, major, minor}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.code {
		case bpfLdxMemW:
			if in.src != 1 || in.off%4 != 0 {
				t.Fatalf("pc %d: a load not from the context", pc)
			}
			reg[in.dst] = uint64(ctx[in.off/4])
		case bpfAndK:
			reg[in.dst] &= uint64(int64(in.imm))
		case bpfRshK:
			reg[in.dst] >>= uint64(in.imm)
		case bpfMovK:
			reg[in.dst] = uint64(int64(in.imm))
		case bpfMovX:
			reg[in.dst] = reg[in.src]
		case bpfJneK:
			if reg[in.dst] != uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case bpfExit:
			return reg[0]
		default:
			t.Fatalf("pc %d: opcode %#x", pc, in.code)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

func TestDeviceProgram(t *testing.T) {
	const (
		c, b    = unix.BPF_DEVCG_DEV_CHAR, unix.BPF_DEVCG_DEV_BLOCK
		m, r, w = unix.BPF_DEVCG_ACC_MKNOD, unix.BPF_DEVCG_ACC_READ, unix.BPF_DEVCG_ACC_WRITE
		denyAll = false
		rwm     = "rwm"
		any     = -1
		allowed = 1
		denied  = 0
	)
	whitelist := []DeviceRule{
		{Allow: denyAll, Type: 'a', Major: any, Minor: any, Access: rwm},
		{Allow: true, Type: 'c', Major: any, Minor: any, Access: "m"},
		{Allow: true, Type: 'c', Major: 1, Minor: 3, Access: rwm},
		{Allow: true, Type: 'c', Major: 136, Minor: any, Access: rwm},
		{Allow: true, Type: 'b', Major: 8, Minor: 0, Access: "r"},
	}
	prog, err := deviceProgram(whitelist)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name                      string
		devType, access, maj, min uint32
		want                      uint64
	}{
		{"read /dev/null", c, r, 1, 3, allowed},
		{"read and write /dev/null", c, r | w, 1, 3, allowed},
		{"mknod any char device", c, m, 10, 229, allowed},
		{"open /dev/fuse", c, r | w, 10, 229, denied},
		{"a pty", c, r | w, 136, 7, allowed},
		{"read the one disk", b, r, 8, 0, allowed},
		{"write the one disk", b, w, 8, 0, denied},
		{"mknod a disk", b, m, 8, 1, denied},
		{"another disk", b, r, 8, 16, denied},
		{"a block device numbered as /dev/null", b, r, 1, 3, denied},
	} {
		if got := run(t, prog, tt.devType, tt.access, tt.maj, tt.min); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	all, err := deviceProgram([]DeviceRule{{Allow: true, Type: 'a', Major: any, Minor: any, Access: rwm}})
	if err != nil || run(t, all, b, r|w, 8, 0) != allowed {
		t.Errorf("a privileged container's program: %v", err)
	}
	for name, rules := range map[string][]DeviceRule{
		"no deny-all first": {{Allow: true, Type: 'c', Major: 1, Minor: 3, Access: rwm}},
		"a deny later":      {whitelist[0], {Allow: false, Type: 'c', Major: 1, Minor: 3, Access: rwm}},
	} {
		if _, err := deviceProgram(rules); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The program, loaded and attached to a cgroup2 cgroup (this host's
// unified hierarchy, or the only one), lets a process in it open what it
// allows only.
func TestDeviceProgramIsEnforced(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF program needs root")
	}
	base := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
		base = "/sys/fs/cgroup"
	}
	if _, err := os.Stat(filepath.Join(base, "cgroup.subtree_control")); err != nil {
		t.Skipf("no cgroup2 hierarchy here: %v", err)
	}
	cg := filepath.Join(base, fmt.Sprintf("crid-test-devices-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cg)
	err := attachDeviceProgram(cg, []DeviceRule{
		{Type: 'a', Major: -1, Minor: -1, Access: "rwm"},
		{Allow: true, Type: 'c', Major: 1, Minor: 3, Access: "rwm"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, minor := range map[string]uint32{"null": 3, "full": 7} {
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR|0o666, int(unix.Mkdev(1, minor))); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("/bin/sh", "-c", "cat null && echo null-ok; head -c 1 full 2>&1 | grep -o 'Operation not permitted'")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	out, err := cmd.Output()
	if err != nil || string(out) != "null-ok\nOperation not permitted\n" {
		t.Errorf("in the cgroup: %q %v, want null-ok and full refused", out, err)
	}
}

// The verifier returns EAGAIN when a signal arrives while it runs; Go's
// runtime sends itself SIGURG to preempt goroutines, so a busy crid saw
// "load the device program: resource temporarily unavailable". Loads under
// a storm of SIGURG (which the runtime takes and ignores) must all succeed.
func TestDeviceProgramLoadsWhileSignalled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading a BPF program needs root")
	}
	rules := []DeviceRule{{Type: 'a', Major: -1, Minor: -1, Access: "rwm"}}
	for i := 0; i < 64; i++ {
		rules = append(rules, DeviceRule{Allow: true, Type: 'c', Major: 1, Minor: int64(i), Access: "rwm"})
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_ = unix.Kill(os.Getpid(), unix.SIGURG)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := 0; i < 300; i++ {
		fd, err := loadDeviceProgram(rules)
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		unix.Close(int(fd))
	}
}
