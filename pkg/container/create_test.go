package container

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// readInRoot reads an image's user files whole, up to a bound, and
// resolves a symlink inside the root, never to the host's file.
func TestReadInRoot(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	big := bytes.Repeat([]byte("u:x:1:1::/:/bin/sh\n"), 40000) // 760 KB, several reads
	os.WriteFile(filepath.Join(root, "etc/passwd"), big, 0o644)
	os.WriteFile(filepath.Join(root, "etc/huge"), make([]byte, maxUserFile+10), 0o644)
	os.WriteFile(filepath.Join(outside, "group"), []byte("host\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/real-group"), []byte("image\n"), 0o644)
	// Absolute, and climbing out: both resolve in the root.
	os.Symlink("/etc/real-group", filepath.Join(root, "etc/group"))
	os.Symlink("../../../../../../.."+outside+"/group", filepath.Join(root, "etc/climb"))
	for _, tc := range []struct {
		path string
		want []byte
	}{
		{"/etc/passwd", big},
		{"/etc/group", []byte("image\n")},
		{"/etc/climb", nil},
		{"/etc/missing", nil},
	} {
		if got := readInRoot(root, tc.path); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %d bytes %.20q, want %d bytes %.20q", tc.path, len(got), got, len(tc.want), tc.want)
		}
	}
	if got := readInRoot(root, "/etc/huge"); len(got) != maxUserFile {
		t.Errorf("a file past the bound: %d bytes, want %d", len(got), maxUserFile)
	}
}
