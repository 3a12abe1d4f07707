// Package image holds crid's images: the registry client, the content
// store, the unpacked layers shared between images, the overlay mounts that
// stack them into container roots, and what they cost on disk.
package image

import (
	"fmt"
	"os"
	"path/filepath"
)

// Layout names the directories of image and container data under the root
// dir. ImageFsInfo reports them as the kubelet's image and container
// filesystems, so they are made at start-up: the kubelet resolves their
// mountpoints before the first image is pulled.
type Layout struct {
	Root string
}

// LayersDir holds unpacked layers, one directory per chain ID, and the
// content blobs they came from.
func (l Layout) LayersDir() string { return filepath.Join(l.Root, "layers") }

// ContainersDir holds each container's writable upper and work dirs.
func (l Layout) ContainersDir() string { return filepath.Join(l.Root, "containers") }

// Ensure makes the directories.
func (l Layout) Ensure() error {
	for _, d := range []string{l.LayersDir(), l.ContainersDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}
