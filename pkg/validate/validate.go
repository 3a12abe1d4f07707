// Package validate checks CRI requests at the edge, once, before anything
// is made: every field that becomes a path, a line of a file, a kernel
// interface's value, a process identity, a size or a count. A refusal is
// an *Error naming the field and what is allowed; it wraps
// errdefs.ErrInvalidArgument, so the kubelet sees InvalidArgument.
//
// The sizes are the Kubernetes API's own where it has one (names and
// labels, annotations, hostname), so nothing a valid pod carries is
// refused, and they keep every object small enough that crid can always
// list what it accepted within one gRPC message.
package validate

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Error is one refused field.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes every refusal an InvalidArgument.
func (e *Error) Unwrap() error { return errdefs.ErrInvalidArgument }

func bad(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits, and where they come from.
const (
	// MaxName is a DNS-1123 subdomain's length, the longest name the
	// Kubernetes API gives a pod, a namespace's or a container's being
	// shorter still.
	MaxName = 253
	// MaxHostname is the kernel's HOST_NAME_MAX.
	MaxHostname = 64
	// MaxLabels and MaxAnnotations are the Kubernetes API's limits on an
	// object's labels (63-character values under 253-character prefixed
	// keys; 64 KiB in all is far past any real use) and annotations
	// (256 KiB in all, TotalAnnotationSizeLimitB).
	MaxLabels      = 64 << 10
	MaxAnnotations = 256 << 10
	// MaxArg is the kernel's MAX_ARG_STRLEN (32 pages, the NUL included):
	// execve refuses a longer argument or environment string.
	MaxArg = 32*4096 - 1
	// MaxArgs is what crid lets argv and the environment take together:
	// half the kernel's ARG_MAX under the default 8 MiB stack, leaving room
	// for the pointers and what the image adds.
	MaxArgs = 1 << 20
	// MaxDNSSearches and MaxDNSServers are what the kubelet itself allows
	// (32 search domains; resolvers read 3 servers, the kubelet passes
	// what the pod gives within its own validation).
	MaxDNSSearches = 32
	MaxDNSServers  = 16
	MaxDNSOptions  = 32
	// MaxCPU is a cpuset's highest CPU or memory node number crid takes
	// (the kernel's NR_CPUS tops out at 8192).
	MaxCPU = 8191
	// MaxID is the largest UID or GID: (uid_t)-1 means "no change".
	MaxID = 1<<32 - 2
)

// Name checks an object's name, namespace or UID: it goes into file
// names, CNI arguments (the kernel caps those) and every List reply.
// Lower case is not asked for: critest names pods in mixed case.
func Name(field, v string) error {
	switch {
	case v == "":
		return bad(field, "is empty")
	case len(v) > MaxName:
		return bad(field, "is %d bytes; at most %d (a DNS-1123 subdomain)", len(v), MaxName)
	case !utf8.ValidString(v):
		return bad(field, "%s is not UTF-8", q(v))
	}
	for _, r := range v {
		if r < 0x21 || r == 0x7f || r == '/' || r == '_' {
			return bad(field, "%s holds %s: names take no spaces, control characters, '/' or '_'", q(v), q(string(r)))
		}
	}
	return nil
}

// Hostname checks a pod's hostname: at most 64 bytes of DNS labels, since
// it is written into /etc/hosts and /etc/hostname and given to
// sethostname. One trailing dot is allowed: with setHostnameAsFQDN the
// kubelet sends name.subdomain.namespace.svc.CLUSTER-DOMAIN, which ends in
// a dot when the node has no cluster domain; the kernel takes it as is.
func Hostname(field, v string) error {
	if v == "" {
		return nil
	}
	if len(v) > MaxHostname {
		return bad(field, "%s is %d bytes; a hostname is at most %d", q(v), len(v), MaxHostname)
	}
	for _, label := range strings.Split(strings.TrimSuffix(v, "."), ".") {
		if !isLabel(label) {
			return bad(field, "%s is not a hostname: dot-separated labels of letters, digits and '-', each starting and ending with a letter or digit", q(v))
		}
	}
	return nil
}

func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Word checks a value that becomes one word of a line-based file
// (resolv.conf): no white space, no NUL, at most max bytes.
func Word(field, v string, max int) error {
	switch {
	case v == "":
		return bad(field, "is empty")
	case len(v) > max:
		return bad(field, "is %d bytes; at most %d", len(v), max)
	case strings.ContainsAny(v, " \t\n\r\v\f\x00"):
		return bad(field, "%s holds white space or NUL: it is one word of a line in resolv.conf", q(v))
	}
	return nil
}

// Line checks a value written into a line of a file or handed to a
// kernel interface: no newline, no NUL.
func Line(field, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return bad(field, "%s holds a newline or NUL", q(v))
	}
	return nil
}

// NoNUL checks a string the kernel takes as a C string (an argument, an
// environment value, a path).
func NoNUL(field, v string) error {
	if strings.IndexByte(v, 0) >= 0 {
		return bad(field, "%s holds NUL", q(v))
	}
	return nil
}

// AbsPath checks an absolute path without NUL.
func AbsPath(field, v string) error {
	switch {
	case v == "":
		return bad(field, "is empty")
	case strings.IndexByte(v, 0) >= 0:
		return bad(field, "%s holds NUL", q(v))
	case !path.IsAbs(v):
		return bad(field, "%s is not an absolute path", q(v))
	}
	return nil
}

// CleanAbsPath checks an absolute path that is also clean: no "..", ".",
// double or trailing slash.
func CleanAbsPath(field, v string) error {
	if err := AbsPath(field, v); err != nil {
		return err
	}
	if c := path.Clean(v); c != v {
		return bad(field, "%s is not a clean path (use %s)", q(v), q(c))
	}
	return nil
}

// MountTarget checks where a mount goes in a container: absolute, and
// never the root itself, however spelt ("/", "/..", "//."): a mount there
// would replace the container's whole root. The executor resolves the
// target inside the root and checks again what it found.
func MountTarget(field, v string) error {
	if err := AbsPath(field, v); err != nil {
		return err
	}
	if path.Clean(v) == "/" {
		return bad(field, "%s is the container's root: a mount there would replace its whole file system", q(v))
	}
	return nil
}

// LogDirectory checks a pod's log_directory: absolute and clean, and not
// in a kernel file system, where the pod's monitor, as root, would write
// container output into whatever file a log path names.
func LogDirectory(field, v string) error {
	if v == "" {
		return nil
	}
	if err := CleanAbsPath(field, v); err != nil {
		return err
	}
	for _, kernel := range []string{"/proc", "/sys", "/dev"} {
		if v == kernel || strings.HasPrefix(v, kernel+"/") {
			return bad(field, "%s is under %s: logs are files of a real file system", q(v), kernel)
		}
	}
	if v == "/" {
		return bad(field, "is the root directory: give the pod a directory of its own")
	}
	return nil
}

// LogPath checks a container's log_path: relative to the pod's log
// directory, and never out of it.
func LogPath(field, v string) error {
	switch {
	case v == "":
		return nil
	case strings.ContainsAny(v, "\n\r\x00"):
		return bad(field, "%s holds a newline or NUL", q(v))
	case path.IsAbs(v):
		return bad(field, "%s must be relative to the pod's log_directory", q(v))
	}
	for _, part := range strings.Split(v, "/") {
		if part == ".." {
			return bad(field, "%s climbs out of the pod's log_directory with ..", q(v))
		}
	}
	if c := path.Clean(v); c == "." {
		return bad(field, "%s names the log directory itself, not a file in it", q(v))
	}
	return nil
}

// EnvKey checks an environment variable's name: execve takes "key=value"
// strings, so a key holding '=' or NUL, or an empty one, would be read
// back as another variable.
func EnvKey(field, k string) error {
	switch {
	case k == "":
		return bad(field, "is empty")
	case strings.ContainsAny(k, "=\x00"):
		return bad(field, "%s holds '=' or NUL", q(k))
	}
	return nil
}

// Args checks a process's argv and environment against what execve
// takes: no NUL, no string over MAX_ARG_STRLEN, and at most MaxArgs in
// all (args and "key=value" pairs).
func Args(field string, args []string, envField string, env [][2]string) error {
	total := 0
	for i, a := range args {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := NoNUL(f, a); err != nil {
			return err
		}
		if len(a) > MaxArg {
			return bad(f, "is %d bytes; the kernel takes at most %d in one argument", len(a), MaxArg)
		}
		total += len(a) + 1
	}
	for i, kv := range env {
		f := fmt.Sprintf("%s[%d]", envField, i)
		if err := EnvKey(f+".key", kv[0]); err != nil {
			return err
		}
		if err := NoNUL(f+".value", kv[1]); err != nil {
			return err
		}
		if n := len(kv[0]) + 1 + len(kv[1]); n > MaxArg {
			return bad(f, "is %d bytes; the kernel takes at most %d in one variable", n, MaxArg)
		}
		total += len(kv[0]) + len(kv[1]) + 2
	}
	if total > MaxArgs {
		return bad(field, "with %s, %d bytes: at most %d", envField, total, MaxArgs)
	}
	return nil
}

// Strings checks the total size of a map of labels or annotations, and
// that none has an empty key.
func Strings(field string, m map[string]string, max int) error {
	total := 0
	for k, v := range m {
		if k == "" {
			return bad(field, "has an empty key")
		}
		total += len(k) + len(v)
	}
	if total > max {
		return bad(field, "are %d bytes in all; at most %d", total, max)
	}
	return nil
}

// ID checks a UID or GID.
func ID(field string, v int64) error {
	if v < 0 || v > MaxID {
		return bad(field, "%d is not a user or group ID (0 to %d)", v, MaxID)
	}
	return nil
}

// Cpuset checks the kernel's list format of CPUs or memory nodes:
// "0-3,5,7-8", ascending ranges of numbers up to MaxCPU.
func Cpuset(field, v string) error {
	if v == "" {
		return nil
	}
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpuNumber(lo)
		if err != nil {
			return bad(field, "%s is not a list of CPUs such as 0-3,5: %v", q(v), err)
		}
		if isRange {
			b, err := cpuNumber(hi)
			if err != nil {
				return bad(field, "%s is not a list of CPUs such as 0-3,5: %v", q(v), err)
			}
			if b < a {
				return bad(field, "%s: the range %s runs backwards", q(v), q(part))
			}
		}
	}
	return nil
}

func cpuNumber(s string) (int, error) {
	if s == "" || len(s) > 4 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a number", q(s))
	}
	n, _ := strconv.Atoi(s)
	if n > MaxCPU {
		return 0, fmt.Errorf("%d is past the highest CPU (%d)", n, MaxCPU)
	}
	return n, nil
}

// Port is one port mapping, as the CRI gives it.
type Port struct {
	Protocol      string
	ContainerPort int32
	HostPort      int32
	HostIP        string
}

// Ports checks a pod's port mappings: ports in range, host IPs that
// parse, and no host port mapped twice on the same address and protocol
// (the second would silently shadow the first in the node's NAT rules).
func Ports(field string, ports []Port) error {
	seen := map[string]int{}
	for i, p := range ports {
		f := fmt.Sprintf("%s[%d]", field, i)
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 {
			return bad(f+".container_port", "%d is not a port (1 to 65535)", p.ContainerPort)
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			return bad(f+".host_port", "%d is not a port (1 to 65535, or 0 not to publish it)", p.HostPort)
		}
		ip := p.HostIP
		if ip != "" {
			parsed := net.ParseIP(ip)
			if parsed == nil {
				return bad(f+".host_ip", "%s is not an IP address", q(ip))
			}
			ip = parsed.String()
		}
		if p.HostPort == 0 {
			continue
		}
		key := fmt.Sprintf("%s/%s/%d", p.Protocol, ip, p.HostPort)
		if j, dup := seen[key]; dup {
			return bad(f+".host_port", "%d/%s on %s is already mapped by %s[%d]", p.HostPort, p.Protocol, q(p.HostIP), field, j)
		}
		// A mapping on every address collides with one on any address.
		for k, j := range seen {
			proto, rest, _ := strings.Cut(k, "/")
			kip, kport, _ := strings.Cut(rest, "/")
			if proto == p.Protocol && kport == strconv.Itoa(int(p.HostPort)) && (kip == "" || ip == "") {
				return bad(f+".host_port", "%d/%s is already mapped by %s[%d] (one of them on every address)", p.HostPort, p.Protocol, field, j)
			}
		}
		seen[key] = i
	}
	return nil
}

// Join gives the first refusal of several checks, or nil.
func Join(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// q quotes a refused value for a message, cut short: a refusal must not
// echo a megabyte back to the caller and into crid's log.
func q(v string) string {
	const most = 64
	if len(v) > most {
		return strconv.Quote(v[:most]) + "..."
	}
	return strconv.Quote(v)
}
