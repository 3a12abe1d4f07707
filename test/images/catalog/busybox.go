package catalog

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The userland of every critest image is Debian's dynamically linked
// busybox with each applet a hard link in /bin, as in the real busybox
// image. Not busybox-static: its shell runs applets in-process, so masking
// /bin/ls could not make `sh -c ls` fail as critest's MaskedPaths spec
// expects; and not symlinks: masking /bin/ls would then mask the shell.
// Debian's busybox has neither pgrep nor ipcs, which critest runs, so
// shell stand-ins fill in for them.

const passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`

// pgrep: ERE against comm, or the whole command line with -f; the pids of
// the matches, exit 1 when none. It skips itself and its own subshells.
const pgrep = `#!/bin/sh
full=0
if [ "$1" = "-f" ]; then full=1; shift; fi
pat="$1"
self=$(tr '\0' ' ' < /proc/$$/cmdline 2>/dev/null)
status=1
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
	[ "$cmd" = "$self" ] && continue
	if [ $full = 1 ]; then s="$cmd"; else s=$(cat "$d/comm" 2>/dev/null); fi
	[ -n "$s" ] || continue
	if echo "$s" | grep -Eq -- "$pat"; then echo "$pid"; status=0; fi
done
exit $status
`

// ipcs: System V IPC objects from /proc/sysvipc. The headers carry no
// digits: critest greps the output for a segment id.
const ipcs = `#!/bin/sh
show() {
	[ -r "/proc/sysvipc/$1" ] || return 0
	echo "------ $2 --------"
	awk -v kind="$1" 'NR == 1 { next }
		kind == "shm" { printf "0x%08x %-10s %-10s %-10s %-10s %-10s\n", $1, $2, $8, $3, $4, $7 }
		kind == "msg" { printf "0x%08x %-10s %-10s %-10s %-10s %-10s\n", $1, $2, $8, $3, $4, $5 }
		kind == "sem" { printf "0x%08x %-10s %-10s %-10s %-10s\n", $1, $2, $5, $3, $4 }' "/proc/sysvipc/$1"
	echo
}
all=1; m=0; q=0; s=0
for a in "$@"; do
	case "$a" in
	-m) m=1; all=0 ;;
	-q) q=1; all=0 ;;
	-s) s=1; all=0 ;;
	-a) ;;
	*) echo "ipcs: unknown option $a" >&2; exit 1 ;;
	esac
done
[ $all = 1 -o $m = 1 ] && show shm "Shared Memory Segments"
[ $all = 1 -o $q = 1 ] && show msg "Message Queues"
[ $all = 1 -o $s = 1 ] && show sem "Semaphore Arrays"
exit 0
`

// busyboxEntries is the base layer: busybox, its applets, the C library it
// needs, and the files a busybox image has in /etc.
func busyboxEntries(busybox string) ([]Entry, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	entries := []Entry{
		Dir("bin", 0o755), Dir("dev", 0o755), Dir("etc", 0o755), Dir("home", 0o755),
		Dir("lib", 0o755), Dir("proc", 0o555), Dir("root", 0o700), Dir("sys", 0o555),
		Dir("tmp", 0o1777), Dir("usr", 0o755), Dir("usr/bin", 0o755), Dir("usr/sbin", 0o755),
		Dir("usr/local", 0o755), Dir("usr/local/bin", 0o755), Dir("var", 0o755),
		Dir("var/run", 0o755), Dir("var/www", 0o755),
		File("bin/busybox", 0o755, bin),
		File("bin/pgrep", 0o755, []byte(pgrep)),
		File("bin/ipcs", 0o755, []byte(ipcs)),
		File("etc/passwd", 0o644, []byte(passwd)),
		File("etc/group", 0o644, []byte(group)),
		File("etc/nsswitch.conf", 0o644, []byte("passwd: files\ngroup: files\nhosts: files dns\n")),
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || applet == "pgrep" || applet == "ipcs" || strings.Contains(applet, "/") {
			continue
		}
		entries = append(entries, HardLink("bin/"+applet, "bin/busybox", 0o755))
	}
	libs, err := sharedLibraries(busybox)
	if err != nil {
		return nil, err
	}
	lib, err := libraryEntries(libs, nil, map[string]bool{"lib": true})
	if err != nil {
		return nil, err
	}
	return append(entries, lib...), nil
}

// HostProgram is a program of the host with the shared libraries it needs
// that the busybox layer lacks, as entries of a layer above that one:
// the binary goes to inImage.
func HostProgram(busybox, binary, inImage string) ([]Entry, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", binary, err)
	}
	have, err := sharedLibraries(busybox)
	if err != nil {
		return nil, err
	}
	libs, err := sharedLibraries(binary)
	if err != nil {
		return nil, err
	}
	lib, err := libraryEntries(libs, have, map[string]bool{})
	if err != nil {
		return nil, err
	}
	return append([]Entry{File(inImage, 0o755, data)}, lib...), nil
}

// libraryEntries makes the files of libs (in the image -> on the host), and
// the directories above them that seenDirs does not hold, leaving out what
// have already has.
func libraryEntries(libs, have map[string]string, seenDirs map[string]bool) ([]Entry, error) {
	var entries []Entry
	for inImage, onHost := range libs {
		if _, ok := have[inImage]; ok {
			continue
		}
		for d := filepath.Dir(inImage); d != "." && !seenDirs[d]; d = filepath.Dir(d) {
			seenDirs[d] = true
			entries = append(entries, Dir(d, 0o755))
		}
		data, err := os.ReadFile(onHost)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", onHost, err)
		}
		entries = append(entries, File(inImage, 0o755, data))
	}
	return entries, nil
}

var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/lib", "/usr/lib"}

// sharedLibraries maps where each library binary needs goes in the image to
// the file on the host: the ELF interpreter at its own path, the DT_NEEDED
// libraries (and theirs) in the first library dir that has them.
func sharedLibraries(binary string) (map[string]string, error) {
	libs := map[string]string{}
	queue := []string{binary}
	for len(queue) > 0 {
		f, err := elf.Open(queue[0])
		if err != nil {
			return nil, fmt.Errorf("read ELF %s: %w", queue[0], err)
		}
		queue = queue[1:]
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				buf := make([]byte, p.Filesz)
				p.ReadAt(buf, 0)
				interp := strings.TrimRight(string(buf), "\x00")
				host, err := filepath.EvalSymlinks(interp)
				if err != nil {
					f.Close()
					return nil, fmt.Errorf("interpreter %s: %w", interp, err)
				}
				libs[strings.TrimPrefix(interp, "/")] = host
			}
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			return nil, err
		}
		for _, lib := range needed {
			found := false
			for _, d := range libDirs {
				host, err := filepath.EvalSymlinks(filepath.Join(d, lib))
				if err != nil {
					continue
				}
				inImage := strings.TrimPrefix(filepath.Join(d, lib), "/")
				if strings.HasPrefix(inImage, "usr/") {
					inImage = strings.TrimPrefix(inImage, "usr/")
				}
				if _, dup := libs[inImage]; !dup {
					libs[inImage] = host
					queue = append(queue, host)
				}
				found = true
				break
			}
			if !found {
				return nil, fmt.Errorf("library %s needed by %s not found in %s", lib, binary, strings.Join(libDirs, ", "))
			}
		}
	}
	return libs, nil
}
