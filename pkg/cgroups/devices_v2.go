package cgroups

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On cgroup v2 device rules are a BPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
// attached to the cgroup: the kernel runs it at each open or mknod of a
// device node and allows the access when it returns 1. crid compiles its
// rules into one, by hand: they are few and of one shape.

// BPF instruction codes used here (linux/bpf.h, linux/bpf_common.h).
const (
	bpfLdxMemW  = 0x61 // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
	bpfAndK     = 0x57 // BPF_ALU64 | BPF_AND | BPF_K: dst &= imm
	bpfRshK     = 0x77 // BPF_ALU64 | BPF_RSH | BPF_K: dst >>= imm
	bpfMovK     = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
	bpfMovX     = 0xbf // BPF_ALU64 | BPF_MOV | BPF_X: dst = src
	bpfJneK     = 0x55 // BPF_JMP | BPF_JNE | BPF_K: if dst != imm goto pc+1+off
	bpfExit     = 0x95 // BPF_JMP | BPF_EXIT: return r0
	bpfInsnSize = 8
)

type bpfInsn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
}

func (i bpfInsn) encode(b []byte) {
	b[0] = i.code
	b[1] = i.dst&0x0f | i.src<<4
	binary.LittleEndian.PutUint16(b[2:], uint16(i.off))
	binary.LittleEndian.PutUint32(b[4:], uint32(i.imm))
}

// deviceProgram compiles rules into the instructions of a device program.
// The rules must be v1's whitelist shape, which is what crid makes: an
// allow-all (a privileged container), or a deny-all followed by allows.
// The program reads the access (type in the low 16 bits, access mask
// above) and the device's numbers from its context, and returns 1 at the
// first allow that covers them, 0 otherwise.
func deviceProgram(rules []DeviceRule) ([]bpfInsn, error) {
	if len(rules) == 0 || rules[0].Type != 'a' {
		return nil, errors.New("device rules on cgroup v2 must start with one for every device (a)")
	}
	if rules[0].Allow && rules[0].Access == "rwm" {
		return []bpfInsn{{code: bpfMovK, dst: 0, imm: 1}, {code: bpfExit}}, nil
	}
	prog := []bpfInsn{
		{code: bpfLdxMemW, dst: 2, src: 1, off: 0}, // r2 = access_type
		{code: bpfAndK, dst: 2, imm: 0xffff},       // r2 = device type
		{code: bpfLdxMemW, dst: 3, src: 1, off: 0}, // r3 = access_type
		{code: bpfRshK, dst: 3, imm: 16},           // r3 = access asked
		{code: bpfLdxMemW, dst: 4, src: 1, off: 4}, // r4 = major
		{code: bpfLdxMemW, dst: 5, src: 1, off: 8}, // r5 = minor
	}
	for i, r := range rules[1:] {
		if !r.Allow {
			return nil, fmt.Errorf("device rule %d (%s): on cgroup v2 crid takes allows after the first rule only", i+1, r)
		}
		var block []bpfInsn
		// Each check jumps past the block when it fails; the offsets are
		// set once the block's length is known.
		switch r.Type {
		case 'c':
			block = append(block, bpfInsn{code: bpfJneK, dst: 2, imm: unix.BPF_DEVCG_DEV_CHAR})
		case 'b':
			block = append(block, bpfInsn{code: bpfJneK, dst: 2, imm: unix.BPF_DEVCG_DEV_BLOCK})
		}
		if mask := accessMask(r.Access); mask != 7 {
			block = append(block,
				bpfInsn{code: bpfMovX, dst: 1, src: 3},
				bpfInsn{code: bpfAndK, dst: 1, imm: int32(^mask & 7)},
				bpfInsn{code: bpfJneK, dst: 1, imm: 0})
		}
		if r.Major >= 0 {
			block = append(block, bpfInsn{code: bpfJneK, dst: 4, imm: int32(r.Major)})
		}
		if r.Minor >= 0 {
			block = append(block, bpfInsn{code: bpfJneK, dst: 5, imm: int32(r.Minor)})
		}
		block = append(block, bpfInsn{code: bpfMovK, dst: 0, imm: 1}, bpfInsn{code: bpfExit})
		for j := range block {
			if block[j].code == bpfJneK {
				block[j].off = int16(len(block) - j - 1)
			}
		}
		prog = append(prog, block...)
	}
	return append(prog, bpfInsn{code: bpfMovK, dst: 0, imm: 0}, bpfInsn{code: bpfExit}), nil
}

func accessMask(access string) int32 {
	var m int32
	for _, c := range access {
		switch c {
		case 'm':
			m |= unix.BPF_DEVCG_ACC_MKNOD
		case 'r':
			m |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			m |= unix.BPF_DEVCG_ACC_WRITE
		}
	}
	return m
}

// attachDeviceProgram loads the rules' program and attaches it to the
// cgroup at dir (with BPF_F_ALLOW_MULTI, so programs of the cgroups above
// it, a systemd's say, still have their say). The attachment holds the
// program as long as the cgroup lives.
func attachDeviceProgram(dir string, rules []DeviceRule) error {
	fd, err := loadDeviceProgram(rules)
	if err != nil {
		return err
	}
	defer unix.Close(int(fd))
	cg, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer cg.Close()
	attach := struct {
		targetFd, attachBpfFd, attachType, attachFlags, replaceBpfFd uint32
	}{
		targetFd: uint32(cg.Fd()), attachBpfFd: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_ATTACH, uintptr(unsafe.Pointer(&attach)), unsafe.Sizeof(attach)); errno != 0 {
		return fmt.Errorf("attach the device program to %s: %w", dir, errno)
	}
	return nil
}

// loadDeviceProgram has the kernel verify and load the rules' program and
// returns its descriptor.
func loadDeviceProgram(rules []DeviceRule) (uintptr, error) {
	prog, err := deviceProgram(rules)
	if err != nil {
		return 0, err
	}
	code := make([]byte, len(prog)*bpfInsnSize)
	for i, in := range prog {
		in.encode(code[i*bpfInsnSize:])
	}
	license := []byte("Apache-2.0\x00")
	logBuf := make([]byte, 64<<10)
	load := struct {
		progType, insnCnt  uint32
		insns, license     uint64
		logLevel, logSize  uint32
		logBuf             uint64
		kernVersion, flags uint32
	}{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE, insnCnt: uint32(len(prog)),
		insns: uint64(uintptr(unsafe.Pointer(&code[0]))), license: uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1, logSize: uint32(len(logBuf)), logBuf: uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
	}
	// The verifier gives up with EAGAIN when a signal is pending on the
	// loading thread (since 4.20), and Go's runtime signals its threads all
	// the time (SIGURG preempts goroutines), so a busy crid failed pod
	// starts with "resource temporarily unavailable" at the first
	// instruction. The load runs on a locked thread with signals blocked;
	// they stay pending and are taken once the mask is back.
	fd, errno := withSignalsBlocked(func() (uintptr, unix.Errno) {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&load)), unsafe.Sizeof(load))
		return fd, errno
	})
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	if errno != 0 {
		return 0, fmt.Errorf("load the device program: %w (verifier: %s)", errno, cString(logBuf))
	}
	return fd, nil
}

// withSignalsBlocked runs call on this goroutine's thread, locked to it,
// with every signal blocked.
func withSignalsBlocked(call func() (uintptr, unix.Errno)) (uintptr, unix.Errno) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		return call()
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return call()
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
