// Package caps names Linux capabilities by number, for the spec
// generator and the container init alike (the init must stay light: it is
// linked into the per-pod monitor).
package caps

// Names are the capabilities by number, as the kernel counts them.
var Names = func() []string {
	names := []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
		"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK",
		"IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT",
		"SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
		"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON",
		"BPF", "CHECKPOINT_RESTORE"}
	for i := range names {
		names[i] = "CAP_" + names[i]
	}
	return names
}()

// Held lists the effective capabilities of the calling
// process, from a /proc/self/status CapEff value.
func Held(capEff uint64) []string {
	var out []string
	for i, n := range Names {
		if capEff&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out
}
