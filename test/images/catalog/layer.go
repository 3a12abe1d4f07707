package catalog

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is every entry's time, so that the same inputs give the same
// layer digests and so the same image IDs on every run.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one member of a layer.
type Entry struct {
	Path     string // relative, without a leading slash
	Type     byte   // tar.TypeReg, TypeDir, TypeSymlink, TypeLink
	Mode     int64
	UID, GID int
	Data     []byte
	Link     string // target of a symlink or hard link
}

// Dir, File, Symlink and HardLink build entries with the usual owners.
func Dir(path string, mode int64) Entry { return Entry{Path: path, Type: tar.TypeDir, Mode: mode} }
func File(path string, mode int64, data []byte) Entry {
	return Entry{Path: path, Type: tar.TypeReg, Mode: mode, Data: data}
}
func Symlink(path, target string) Entry {
	return Entry{Path: path, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

// HardLink carries the mode of its target: some unpackers apply a hard
// link's header mode to the shared inode, and a 0 there would leave every
// link, the target too, unrunnable.
func HardLink(path, target string, mode int64) Entry {
	return Entry{Path: path, Type: tar.TypeLink, Mode: mode, Link: target}
}

// Tar writes entries as an uncompressed tar in a fixed order, so the same
// entries always make the same bytes: directories first, so that a
// streaming unpacker meets a parent before its children; hard links last,
// after their targets; each group by path.
func Tar(entries []Entry) ([]byte, error) {
	rank := func(e Entry) int {
		switch e.Type {
		case tar.TypeDir:
			return 0
		case tar.TypeLink:
			return 2
		}
		return 1
	}
	sorted := append([]Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if ri, rj := rank(sorted[i]), rank(sorted[j]); ri != rj {
			return ri < rj
		}
		return sorted[i].Path < sorted[j].Path
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range sorted {
		h := &tar.Header{
			Name: e.Path, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			Linkname: e.Link, ModTime: epoch, Format: tar.FormatPAX,
		}
		if e.Type == tar.TypeDir {
			h.Name += "/"
		}
		if e.Type == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", e.Path, err)
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("tar data %s: %w", e.Path, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Layer makes an image layer of entries, gzip-compressed unless opts say
// otherwise (tarball.WithCompression).
func Layer(entries []Entry, opts ...tarball.LayerOption) (v1.Layer, error) {
	raw, err := Tar(entries)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, opts...)
}
