package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"k8s.io/klog/v2"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image/reference"
)

// Bounds on what an archive may make crid hold in memory: its index of
// entries, and each JSON document (index, manifest, config), which real
// images keep to kilobytes.
const (
	maxArchiveEntries = 1 << 16
	maxDocument       = 4 << 20
)

// Import loads the images of an archive file, for air-gapped nodes and for
// loading images the way kind does (`kind load` pipes an archive to the
// runtime): a docker-archive (`docker save`, `podman save`) or an OCI image
// layout in a tar (`podman save --format oci-archive`, `ctr export`, and
// Docker 25's `docker save`, which holds both), either gzipped or not.
//
// An archive is checked as a pull is: every blob an OCI layout names
// against its digest, a docker-archive's config against the ID its name
// claims, every layer against its config's diff ID, and each layer is
// unpacked by the same code as a pulled one, which refuses hostile
// entries. The archive's own entries are only ever read, never written
// out, so its names cannot lead anywhere. Only images of this host's
// platform are taken; an image index gives the host's manifest.
//
// Images are named as the archive names them; name, when not empty, names
// the archive's one image instead (for an OCI layout whose ref.name is a
// tag alone). An image without a name is known by its ID.
func (s *Service) Import(ctx context.Context, file, name string) ([]*Image, error) {
	var tag reference.Named
	if name != "" {
		n, err := reference.Parse(name)
		if err != nil || n.Tag == "" {
			return nil, fmt.Errorf("image name %q: want a tagged reference (registry/repository:tag): %w", name, errdefs.ErrInvalidArgument)
		}
		tag = n
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	a, cleanup, err := s.openArchive(f)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", file, err)
	}
	defer cleanup()

	var found []archiveImage
	switch {
	case a.has("oci-layout") && a.has("index.json"):
		found, err = a.ociImages()
	case a.has("manifest.json"):
		found, err = a.dockerImages()
	default:
		err = fmt.Errorf("neither an OCI layout (oci-layout, index.json) nor a docker-archive (manifest.json): %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", file, err)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("archive %s holds no image for %s: %w", file, hostPlatform().String(), errdefs.ErrFailedPrecondition)
	}
	if name != "" {
		if len(found) != 1 {
			return nil, fmt.Errorf("a name was given for an archive of %d images: %w", len(found), errdefs.ErrInvalidArgument)
		}
		found[0].names = []reference.Named{tag}
	}
	var out []*Image
	for _, im := range found {
		img, err := s.importImage(ctx, a, im)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", file, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// archiveImage is one image found in an archive, not yet checked against
// its layers.
type archiveImage struct {
	names          []reference.Named
	manifestDigest string // "" for a docker-archive's image
	rawConfig      []byte
	layers         []archiveLayer
}

type archiveLayer struct {
	entry     string // the blob's name in the archive
	digest    string // "" when the archive does not say (docker-archive)
	mediaType string
}

func (s *Service) importImage(ctx context.Context, a *tarIndex, im archiveImage) (*Image, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(im.rawConfig))
	if err != nil {
		return nil, fmt.Errorf("image config: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if cfg.OS != "" && cfg.OS != "linux" || cfg.Architecture != "" && cfg.Architecture != HostArchitecture() {
		return nil, fmt.Errorf("image %s is for %s/%s, not %s: %w", im.label(), cfg.OS, cfg.Architecture, hostPlatform().String(), errdefs.ErrFailedPrecondition)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(im.layers) {
		return nil, fmt.Errorf("image %s: %d layers and %d diff IDs in its config: refused: %w", im.label(), len(im.layers), len(diffIDs), errdefs.ErrInvalidArgument)
	}
	sum := sha256.Sum256(im.rawConfig)
	id := "sha256:" + hex.EncodeToString(sum[:])
	chains := chainIDs(diffIDs)
	metas := make([]Layer, len(im.layers))
	openers := make([]blobOpener, len(im.layers))
	size := uint64(len(im.rawConfig))
	for i, l := range im.layers {
		e := a.entries[l.entry]
		d := l.digest
		if d == "" {
			// A docker-archive names a layer by a path, not a digest: the
			// digest is what the blob is, and the diff ID check is what
			// ties it to the image.
			if d, err = a.digest(e); err != nil {
				return nil, err
			}
		}
		metas[i] = Layer{Digest: d, DiffID: diffIDs[i].String(), ChainID: chains[i], Size: e.size, MediaType: l.mediaType}
		openers[i] = a.opener(e)
		size += uint64(e.size)
	}
	read, _, err := s.unpackAll(ctx, metas, openers)
	if err != nil {
		return nil, err
	}
	names := im.names
	if len(names) == 0 {
		names = []reference.Named{{}}
	}
	var rec *Image
	for _, n := range names {
		if rec, err = s.record(n, im.manifestDigest, id, im.rawConfig, metas, size); err != nil {
			return nil, err
		}
	}
	klog.InfoS("Image imported", "image", im.label(), "id", id, "layers", len(metas), "unpackedBytes", read)
	return rec, nil
}

func (im archiveImage) label() string {
	if len(im.names) == 0 {
		return "(unnamed)"
	}
	return im.names[0].String()
}

// tarIndex is a tar file's regular entries, by name, read in place.
type tarIndex struct {
	r       io.ReaderAt
	entries map[string]entry
}

type entry struct {
	name         string
	offset, size int64
}

func (a *tarIndex) has(name string) bool { _, ok := a.entries[name]; return ok }

func (a *tarIndex) opener(e entry) blobOpener {
	return func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(a.r, e.offset, e.size)), nil }
}

func (a *tarIndex) digest(e entry) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(a.r, e.offset, e.size)); err != nil {
		return "", fmt.Errorf("read %s: %w", e.name, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// document reads a JSON entry, bounded.
func (a *tarIndex) document(name string) ([]byte, error) {
	e, ok := a.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s is not in the archive: %w", name, errdefs.ErrInvalidArgument)
	}
	if e.size > maxDocument {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a manifest or config may be: refused: %w", name, e.size, maxDocument, errdefs.ErrInvalidArgument)
	}
	b := make([]byte, e.size)
	if _, err := a.r.ReadAt(b, e.offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// blob reads an OCI layout's JSON blob and checks it is what its
// descriptor says.
func (a *tarIndex) blob(d v1.Descriptor) ([]byte, error) {
	name, err := blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	b, err := a.document(name)
	if err != nil {
		return nil, err
	}
	if got := sha256.Sum256(b); "sha256:"+hex.EncodeToString(got[:]) != d.Digest.String() || int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s does not match its digest or size: refused: %w", d.Digest, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

func blobPath(d v1.Hash) (string, error) {
	if d.Algorithm != "sha256" || len(d.Hex) != 64 {
		return "", fmt.Errorf("digest %q: only sha256 digests are taken: %w", d.String(), errdefs.ErrInvalidArgument)
	}
	return "blobs/sha256/" + d.Hex, nil
}

// openArchive indexes the archive's regular entries. A gzipped archive is
// first decompressed into a temporary file beside the layers, which cleanup
// removes.
func (s *Service) openArchive(f *os.File) (*tarIndex, func(), error) {
	cleanup := func() {}
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil && magic == [2]byte{0x1f, 0x8b} {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		tmp, err := os.CreateTemp(s.opts.Layout.LayersDir(), tmpPrefix+"import-")
		if err != nil {
			return nil, nil, err
		}
		os.Remove(tmp.Name()) // the open descriptor keeps it; nothing to leak
		if _, err := io.Copy(tmp, zr); err != nil {
			tmp.Close()
			return nil, nil, fmt.Errorf("gunzip: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		f = tmp
		cleanup = func() { tmp.Close() }
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, err
	}
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	a := &tarIndex{r: f, entries: map[string]entry{}}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("not a tar archive: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if h.Typeflag != tar.TypeReg {
			continue // directories; links are never followed: what they name is not there
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if _, dup := a.entries[name]; dup {
			cleanup()
			return nil, nil, fmt.Errorf("%s is in the archive twice: refused: %w", name, errdefs.ErrInvalidArgument)
		}
		if len(a.entries) == maxArchiveEntries {
			cleanup()
			return nil, nil, fmt.Errorf("more than %d entries: refused: %w", maxArchiveEntries, errdefs.ErrInvalidArgument)
		}
		// tar reads headers in whole blocks and nothing ahead: the data
		// starts where the reader stands.
		a.entries[name] = entry{name: name, offset: cr.n, size: h.Size}
	}
	return a, cleanup, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// ociImages reads an OCI layout: index.json's manifests, an image index's
// host-platform manifest, names from containerd's io.containerd.image.name
// or a full org.opencontainers.image.ref.name.
func (a *tarIndex) ociImages() ([]archiveImage, error) {
	raw, err := a.document("index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	byDigest := map[string]int{}
	var out []archiveImage
	for _, d := range idx.Manifests {
		md, err := a.hostManifest(d, 0)
		if err != nil {
			return nil, err
		}
		if md == nil {
			continue
		}
		var names []reference.Named
		for _, key := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
			if n, err := reference.Parse(d.Annotations[key]); err == nil && n.Tag != "" && strings.Contains(d.Annotations[key], ":") {
				names = append(names, n)
				break
			}
		}
		// One manifest under several names is one image with those names.
		if i, ok := byDigest[md.Digest.String()]; ok {
			out[i].names = append(out[i].names, names...)
			continue
		}
		raw, err := a.blob(*md)
		if err != nil {
			return nil, err
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %v: %w", md.Digest, err, errdefs.ErrInvalidArgument)
		}
		cfg, err := a.blob(m.Config)
		if err != nil {
			return nil, err
		}
		im := archiveImage{names: names, manifestDigest: md.Digest.String(), rawConfig: cfg}
		for _, l := range m.Layers {
			p, err := blobPath(l.Digest)
			if err != nil {
				return nil, err
			}
			if !a.has(p) {
				return nil, fmt.Errorf("layer %s is not in the archive: %w", l.Digest, errdefs.ErrInvalidArgument)
			}
			if a.entries[p].size != l.Size {
				return nil, fmt.Errorf("layer %s is %d bytes, its manifest says %d: refused: %w", l.Digest, a.entries[p].size, l.Size, errdefs.ErrInvalidArgument)
			}
			im.layers = append(im.layers, archiveLayer{entry: p, digest: l.Digest.String(), mediaType: string(l.MediaType)})
		}
		byDigest[md.Digest.String()] = len(out)
		out = append(out, im)
	}
	return out, nil
}

// hostManifest is d itself when it is an image manifest, or the host
// platform's manifest of the image index d is; nil when the index has none.
func (a *tarIndex) hostManifest(d v1.Descriptor, depth int) (*v1.Descriptor, error) {
	switch d.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		if d.Platform != nil && !d.Platform.Satisfies(hostPlatform()) {
			return nil, nil
		}
		return &d, nil
	case types.OCIImageIndex, types.DockerManifestList:
		if depth > 2 {
			return nil, fmt.Errorf("image indexes nested more than 3 deep: refused: %w", errdefs.ErrInvalidArgument)
		}
		raw, err := a.blob(d)
		if err != nil {
			return nil, err
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index %s: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
		}
		for _, m := range idx.Manifests {
			if m.Platform != nil && !m.Platform.Satisfies(hostPlatform()) {
				continue
			}
			if found, err := a.hostManifest(m, depth+1); err != nil || found != nil {
				if found != nil && found.Annotations == nil {
					found.Annotations = d.Annotations
				}
				return found, err
			}
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("manifest %s has media type %q, not an image manifest or index: %w", d.Digest, d.MediaType, errdefs.ErrInvalidArgument)
	}
}

// dockerManifest is one image of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerImages reads a docker-archive: manifest.json lists each image's
// config (named by its digest), tags and layer files.
func (a *tarIndex) dockerImages() ([]archiveImage, error) {
	raw, err := a.document("manifest.json")
	if err != nil {
		return nil, err
	}
	var list []dockerManifest
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("manifest.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []archiveImage
	for _, m := range list {
		cfgName := path.Clean(m.Config)
		cfg, err := a.document(cfgName)
		if err != nil {
			return nil, err
		}
		// docker names the config by its digest (ID.json; blobs/sha256/ID
		// since Docker 25; sha256:ID in go-containerregistry's archives):
		// it must be that.
		want := strings.TrimPrefix(strings.TrimSuffix(path.Base(cfgName), ".json"), "sha256:")
		if got := sha256.Sum256(cfg); hex.EncodeToString(got[:]) != want {
			return nil, fmt.Errorf("config %s does not match the digest its name gives: refused: %w", m.Config, errdefs.ErrInvalidArgument)
		}
		im := archiveImage{rawConfig: cfg}
		for _, t := range m.RepoTags {
			n, err := reference.Parse(t)
			if err != nil || n.Tag == "" {
				return nil, fmt.Errorf("manifest.json: RepoTags %q: not a tagged name: %w", t, errdefs.ErrInvalidArgument)
			}
			im.names = append(im.names, n)
		}
		for _, l := range m.Layers {
			p := path.Clean(l)
			if !a.has(p) {
				return nil, fmt.Errorf("layer %s is not in the archive: %w", l, errdefs.ErrInvalidArgument)
			}
			im.layers = append(im.layers, archiveLayer{entry: p})
		}
		out = append(out, im)
	}
	return out, nil
}
