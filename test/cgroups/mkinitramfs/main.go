// Command mkinitramfs writes the initramfs that boots the cgroup v2 tests:
// a newc cpio holding the static test binary as /init, the directories it
// mounts on, and /dev/console, which the kernel opens for init's output
// before anything is mounted, and more binaries under /bin (-bin, as
// many as needed).
//
//	mkinitramfs -init cgroups.test [-bin crid-podmon] -o initramfs.cpio
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

type entry struct {
	name         string
	mode         uint32 // type and permission bits
	data         []byte
	major, minor uint32
}

func main() {
	initPath := flag.String("init", "", "binary to run as /init")
	out := flag.String("o", "initramfs.cpio", "output file")
	var bins []string
	flag.Func("bin", "a binary to put under /bin (repeatable)", func(v string) error {
		bins = append(bins, v)
		return nil
	})
	flag.Parse()
	bin, err := os.ReadFile(*initPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
	const dir, reg, chr = 0o040000, 0o100000, 0o020000
	entries := []entry{
		{name: "dev", mode: dir | 0o755}, {name: "dev/console", mode: chr | 0o600, major: 5, minor: 1},
		{name: "proc", mode: dir | 0o555}, {name: "sys", mode: dir | 0o555}, {name: "tmp", mode: dir | 0o1777},
		{name: "bin", mode: dir | 0o755}, {name: "init", mode: reg | 0o755, data: bin},
	}
	for _, b := range bins {
		data, err := os.ReadFile(b)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
			os.Exit(1)
		}
		entries = append(entries, entry{name: "bin/" + filepath.Base(b), mode: reg | 0o755, data: data})
	}
	if err := write(*out, entries); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}

// write emits the "new ASCII" cpio format the kernel unpacks.
func write(path string, entries []entry) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	pad := func(n int) {
		for n%4 != 0 {
			w.WriteByte(0)
			n++
		}
	}
	put := func(ino int, e entry) {
		name := e.name + "\x00"
		fmt.Fprintf(w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.major, e.minor, len(name), 0)
		w.WriteString(name)
		pad(110 + len(name))
		w.Write(e.data)
		pad(len(e.data))
	}
	for i, e := range entries {
		put(i+1, e)
	}
	put(0, entry{name: "TRAILER!!!"})
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
