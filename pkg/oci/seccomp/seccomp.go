// Package seccomp compiles an OCI seccomp configuration with libseccomp
// and loads it into the calling thread: the last thing a container's init
// does before it execs.
package seccomp

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

func action(a specs.LinuxSeccompAction, errnoRet *uint) (libseccomp.ScmpAction, error) {
	switch a {
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActErrno:
		code := int16(unix.EPERM)
		if errnoRet != nil {
			code = int16(*errnoRet)
		}
		return libseccomp.ActErrno.SetReturnCode(code), nil
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActTrace:
		code := int16(unix.EPERM)
		if errnoRet != nil {
			code = int16(*errnoRet)
		}
		return libseccomp.ActTrace.SetReturnCode(code), nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	}
	return libseccomp.ActInvalid, fmt.Errorf("seccomp action %s is not supported", a)
}

var ops = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual: libseccomp.CompareNotEqual, specs.OpLessThan: libseccomp.CompareLess,
	specs.OpLessEqual: libseccomp.CompareLessOrEqual, specs.OpEqualTo: libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual, specs.OpGreaterThan: libseccomp.CompareGreater,
	specs.OpMaskedEqual: libseccomp.CompareMaskedEqual,
}

// Filter builds the libseccomp filter of a configuration. noNewPrivs
// says whether the process runs with no_new_privs: without it the filter
// is loaded while the init still holds CAP_SYS_ADMIN, and must not set
// the bit itself.
func Filter(cfg *specs.LinuxSeccomp, noNewPrivs bool) (*libseccomp.ScmpFilter, error) {
	def, err := action(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("default action: %w", err)
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, err
	}
	if err := f.SetNoNewPrivsBit(noNewPrivs); err != nil {
		f.Release()
		return nil, err
	}
	for _, a := range cfg.Architectures {
		arch, err := libseccomp.GetArchFromString(strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_")))
		if err != nil {
			continue // an architecture this libseccomp does not know
		}
		if err := f.AddArch(arch); err != nil {
			f.Release()
			return nil, fmt.Errorf("architecture %s: %w", a, err)
		}
	}
	for _, sc := range cfg.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			f.Release()
			return nil, err
		}
		if act == def {
			continue // libseccomp refuses rules that repeat the default
		}
		var conds []libseccomp.ScmpCondition
		for _, a := range sc.Args {
			op, ok := ops[a.Op]
			if !ok {
				f.Release()
				return nil, fmt.Errorf("seccomp operator %s is not supported", a.Op)
			}
			values := []uint64{a.Value}
			if a.Op == specs.OpMaskedEqual {
				values = append(values, a.ValueTwo)
			}
			c, err := libseccomp.MakeCondition(a.Index, op, values...)
			if err != nil {
				f.Release()
				return nil, err
			}
			conds = append(conds, c)
		}
		for _, name := range sc.Names {
			call, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // not a syscall of this architecture, as runc skips it
			}
			if len(conds) == 0 {
				err = f.AddRule(call, act)
			} else {
				err = f.AddRuleConditional(call, act, conds)
			}
			if err != nil {
				f.Release()
				return nil, fmt.Errorf("seccomp rule for %s: %w", name, err)
			}
		}
	}
	return f, nil
}

// Load compiles cfg and loads it into the calling thread.
func Load(cfg *specs.LinuxSeccomp, noNewPrivs bool) error {
	f, err := Filter(cfg, noNewPrivs)
	if err != nil {
		return err
	}
	defer f.Release()
	if err := f.Load(); err != nil {
		return fmt.Errorf("load seccomp filter: %w", err)
	}
	return nil
}
