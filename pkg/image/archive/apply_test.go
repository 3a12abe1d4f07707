package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var mtime = time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)

type ent struct {
	name  string
	typ   byte
	mode  int64
	data  string
	link  string
	uid   int
	pax   map[string]string
	major int64
}

func mkTar(t testing.TB, ents []ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.uid,
			ModTime: mtime, PAXRecords: e.pax, Devmajor: e.major, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	tw.Close()
	return b.Bytes()
}

func opts() Options { return Options{NoOwnership: os.Geteuid() != 0} }

// sandbox is a layer dir with a sibling that hostile layers aim at: after
// any refusal the sibling must be untouched.
func sandbox(t *testing.T) (layer, outside string) {
	base := t.TempDir()
	layer, outside = filepath.Join(base, "layer"), filepath.Join(base, "outside")
	os.Mkdir(layer, 0o755)
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "victim"), []byte("intact"), 0o644)
	return layer, outside
}

func TestHostileLayersAreRefused(t *testing.T) {
	tests := []struct {
		name string
		ents []ent
		want string
	}{
		{"dot-dot name", []ent{{name: "../outside/victim", typ: tar.TypeReg, mode: 0o644, data: "pwned"}}, "climbs out"},
		{"dot-dot inside a name", []ent{{name: "a/../../outside/victim", typ: tar.TypeReg, mode: 0o644, data: "pwned"}}, "climbs out"},
		{"absolute name", []ent{{name: "/etc/passwd", typ: tar.TypeReg, mode: 0o644, data: "pwned"}}, "absolute"},
		{"write through a symlink to outside", []ent{
			{name: "esc", typ: tar.TypeSymlink, link: "../outside"},
			{name: "esc/victim", typ: tar.TypeReg, mode: 0o644, data: "pwned"},
		}, "leads out of the layer"},
		{"write through an absolute symlink", []ent{
			{name: "esc", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "esc/planted", typ: tar.TypeReg, mode: 0o644, data: "pwned"},
		}, "leads out of the layer"},
		{"write through a symlink chain", []ent{
			{name: "a", typ: tar.TypeSymlink, link: "b"},
			{name: "b", typ: tar.TypeSymlink, link: "../outside"},
			{name: "a/victim", typ: tar.TypeReg, mode: 0o644, data: "pwned"},
		}, "leads out of the layer"},
		{"hard link to outside", []ent{{name: "h", typ: tar.TypeLink, link: "../outside/victim"}}, "outside the layer"},
		{"hard link to an absolute path", []ent{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}, "outside the layer"},
		{"hard link through a symlink", []ent{
			{name: "esc", typ: tar.TypeSymlink, link: "../outside"},
			{name: "h", typ: tar.TypeLink, link: "esc/victim"},
		}, "leads out of the layer"},
		{"hard link to a missing file", []ent{{name: "h", typ: tar.TypeLink, link: "nothing"}}, "not in this layer"},
		{"over-long component", []ent{{name: strings.Repeat("n", 300), typ: tar.TypeReg, mode: 0o644}}, "NAME_MAX"},
		{"over-long name", []ent{{name: strings.Repeat("d/", 2100) + "f", typ: tar.TypeReg, mode: 0o644}}, "PATH_MAX"},
		{"overlay xattr", []ent{{name: "d", typ: tar.TypeDir, mode: 0o755, pax: map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/x"}}}, "overlayfs's own"},
		{"whiteout of dot-dot", []ent{{name: "a/.wh...", typ: tar.TypeReg}}, "whiteout of nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer, outside := sandbox(t)
			_, err := Apply(layer, bytes.NewReader(mkTar(t, tt.ents)), opts())
			var ae *Error
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a refusal mentioning %q", err, tt.want)
			}
			if data, _ := os.ReadFile(filepath.Join(outside, "victim")); string(data) != "intact" {
				t.Fatalf("outside file changed: %q", data)
			}
			if names, _ := os.ReadDir(outside); len(names) != 1 {
				t.Fatalf("something was written outside: %v", names)
			}
			if _, err := os.Stat("/tmp/planted"); err == nil {
				t.Fatal("wrote /tmp/planted")
			}
		})
	}
}

func TestGiganticHeaderIsRefused(t *testing.T) {
	layer, _ := sandbox(t)
	// Go's tar writer will not write a 2 MiB PAX header, so make a plain
	// header and retype it as one.
	record := "SCHILY.xattr.user.big=" + strings.Repeat("x", 2<<20) + "\n"
	record = fmt.Sprintf("%d %s", len(record)+8, record)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "pax", Typeflag: tar.TypeReg, Size: int64(len(record)), Mode: 0o644, Format: tar.FormatUSTAR})
	tw.Write([]byte(record))
	tw.Close()
	data := b.Bytes()
	data[156] = tar.TypeXHeader
	copy(data[148:156], "        ")
	sum := 0
	for _, c := range data[:512] {
		sum += int(c)
	}
	copy(data[148:156], fmt.Sprintf("%06o\x00 ", sum))
	if _, err := Apply(layer, bytes.NewReader(data), opts()); err == nil || !strings.Contains(err.Error(), "read layer tar") {
		t.Fatalf("a 2 MiB PAX header was accepted: %v", err)
	}
}

func TestTruncatedLayerFails(t *testing.T) {
	layer, _ := sandbox(t)
	data := mkTar(t, []ent{{name: "f", typ: tar.TypeReg, mode: 0o644, data: strings.Repeat("x", 5000)}})
	if _, err := Apply(layer, bytes.NewReader(data[:1500]), opts()); err == nil {
		t.Fatal("a truncated layer was accepted")
	}
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

func TestLayerIsUnpackedExactly(t *testing.T) {
	root := os.Geteuid() == 0
	layer, _ := sandbox(t)
	ents := []ent{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, data: "#!busybox"},
		{name: "bin/sh", typ: tar.TypeLink, link: "bin/busybox", mode: 0},
		{name: "bin/ls", typ: tar.TypeSymlink, link: "busybox"},
		{name: "usr/local/bin/suid", typ: tar.TypeReg, mode: 0o4755, data: "s", uid: 0},
		{name: "home/user/file", typ: tar.TypeReg, mode: 0o640, data: "mine", uid: 1000},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "dev/null-ish", typ: tar.TypeChar, mode: 0o666, major: 1},
		{name: "x/attr", typ: tar.TypeReg, mode: 0o644, pax: map[string]string{"SCHILY.xattr.user.note": "hello"}},
		{name: "etc/.wh.removed", typ: tar.TypeReg},
		{name: "var/cache/.wh..wh..opq", typ: tar.TypeReg},
		{name: "replaced", typ: tar.TypeReg, mode: 0o644, data: "old"},
		{name: "replaced", typ: tar.TypeReg, mode: 0o600, data: "new"},
		{name: "link/inside", typ: tar.TypeSymlink, link: "../bin"},
		{name: "link/inside/through", typ: tar.TypeReg, mode: 0o644, data: "via an inside symlink"},
	}
	st, err := Apply(layer, bytes.NewReader(mkTar(t, ents)), opts())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != len(ents) {
		t.Errorf("entries %d, want %d", st.Entries, len(ents))
	}
	p := func(n string) string { return filepath.Join(layer, n) }

	if s := lstat(t, p("bin/sh")); s.Ino != lstat(t, p("bin/busybox")).Ino || s.Mode&0o777 != 0o755 {
		t.Errorf("bin/sh is not busybox's inode with its 0755 mode: %o", s.Mode)
	}
	if l, _ := os.Readlink(p("bin/ls")); l != "busybox" {
		t.Errorf("bin/ls -> %q", l)
	}
	if s := lstat(t, p("tmp")); s.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode %o", s.Mode&0o7777)
	}
	if s := lstat(t, p("fifo")); s.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo is %o", s.Mode)
	}
	if data, _ := os.ReadFile(p("replaced")); string(data) != "new" || lstat(t, p("replaced")).Mode&0o777 != 0o600 {
		t.Errorf("a later entry did not replace the earlier one: %q", data)
	}
	if data, _ := os.ReadFile(p("bin/through")); string(data) != "via an inside symlink" {
		t.Errorf("a write through a symlink inside the layer failed: %q", data)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(p("x/attr"), "user.note", buf); err != nil || string(buf[:n]) != "hello" {
		t.Errorf("user xattr: %q, %v", buf[:n], err)
	}
	if s := lstat(t, p("home/user/file")); s.Mtim.Sec != mtime.Unix() {
		t.Errorf("mtime %d, want %d", s.Mtim.Sec, mtime.Unix())
	}
	if s := lstat(t, p("home")); s.Mtim.Sec == mtime.Unix() {
		// home had no entry of its own, so it keeps the time it was made.
	}
	if s := lstat(t, p("bin")); s.Mtim.Sec != mtime.Unix() {
		t.Errorf("directory mtime %d not restored after its children were made", s.Mtim.Sec)
	}
	if !root {
		t.Log("not root: ownership, devices, whiteouts and trusted xattrs are not checked")
		return
	}
	if s := lstat(t, p("usr/local/bin/suid")); s.Mode&0o7777 != 0o4755 || s.Uid != 0 {
		t.Errorf("setuid file: mode %o uid %d", s.Mode&0o7777, s.Uid)
	}
	if s := lstat(t, p("home/user/file")); s.Uid != 1000 || s.Gid != 1000 || s.Mode&0o777 != 0o640 {
		t.Errorf("owned file: %d:%d %o", s.Uid, s.Gid, s.Mode&0o777)
	}
	if s := lstat(t, p("dev/null-ish")); s.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(s.Rdev) != 1 {
		t.Errorf("char device: %o rdev %d", s.Mode, s.Rdev)
	}
	if s := lstat(t, p("etc/removed")); s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != 0 {
		t.Errorf("whiteout is not a 0:0 char device: %o rdev %d", s.Mode, s.Rdev)
	}
	if _, err := os.Lstat(p("etc/.wh.removed")); err == nil {
		t.Error("the .wh. file itself was written")
	}
	if n, err := unix.Lgetxattr(p("var/cache"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque dir: %q, %v", buf[:n], err)
	}
}

func FuzzApply(f *testing.F) {
	f.Add(mkTar(f, []ent{{name: "a/b", typ: tar.TypeReg, mode: 0o644, data: "x"}, {name: "c", typ: tar.TypeLink, link: "a/b"}}))
	f.Add(mkTar(f, []ent{{name: "s", typ: tar.TypeSymlink, link: "../x"}, {name: "s/f", typ: tar.TypeReg, mode: 0o644}}))
	f.Add(mkTar(f, []ent{{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "d/.wh..wh..opq", typ: tar.TypeReg}, {name: "d/.wh.x", typ: tar.TypeReg}}))
	f.Add(mkTar(f, []ent{{name: "f", typ: tar.TypeReg, mode: 0o644}, {name: "f", typ: tar.TypeDir, mode: 0o755}, {name: "f/g", typ: tar.TypeFifo, mode: 0o600}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		layer := filepath.Join(base, "layer")
		os.Mkdir(layer, 0o755)
		Apply(layer, bytes.NewReader(data), Options{NoOwnership: true})
		// Whatever the stream, nothing may appear beside the layer dir.
		names, err := os.ReadDir(base)
		if err != nil || len(names) != 1 {
			t.Fatalf("written outside the layer: %v", names)
		}
	})
}

// BenchmarkApply unpacks a layer of 20 directories of 25 files of 4 KiB
// (2 MB, 520 entries): the per-entry cost of the secure unpack (openat2
// in the layer's root for every entry) beside the bytes written.
func BenchmarkApply(b *testing.B) {
	var ents []ent
	body := strings.Repeat("x", 4096)
	for d := range 20 {
		ents = append(ents, ent{name: fmt.Sprintf("d%d/", d), typ: tar.TypeDir, mode: 0o755})
		for f := range 25 {
			ents = append(ents, ent{name: fmt.Sprintf("d%d/f%d", d, f), typ: tar.TypeReg, mode: 0o644, data: body})
		}
	}
	data := mkTar(b, ents)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dir := b.TempDir()
		if _, err := Apply(dir, bytes.NewReader(data), Options{NoOwnership: true}); err != nil {
			b.Fatal(err)
		}
	}
}
