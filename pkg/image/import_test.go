package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func testImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(64, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", HostArchitecture()
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// dockerArchive is `docker save` of img as tag.
func dockerArchive(t *testing.T, img v1.Image, tag string) []byte {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tarball.Write(ref, img, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ociArchive is an OCI layout of img, with annotations on its index entry,
// in a tar.
func ociArchive(t *testing.T, img v1.Image, annotations map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(annotations)); err != nil {
		t.Fatal(err)
	}
	return tarDir(t, dir)
}

func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return b.Bytes()
}

// rewrite copies a tar archive, letting edit change each entry's content
// (or drop it, returning nil), and add appends entries.
func rewrite(t *testing.T, in []byte, edit func(name string, data []byte) []byte, add map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tr := tar.NewReader(bytes.NewReader(in))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if edit != nil {
			if data = edit(h.Name, data); data == nil {
				continue
			}
		}
		h.Size = int64(len(data))
		tw.WriteHeader(h)
		tw.Write(data)
	}
	for n, data := range add {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	return b.Bytes()
}

// scan indexes an archive and finds its images, as Import does before
// unpacking anything.
func scan(t *testing.T, data []byte) ([]archiveImage, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &Service{opts: Options{Layout: Layout{Root: t.TempDir()}}}
	if err := os.MkdirAll(s.opts.Layout.LayersDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	a, cleanup, err := s.openArchive(f)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	switch {
	case a.has("oci-layout") && a.has("index.json"):
		return a.ociImages()
	case a.has("manifest.json"):
		return a.dockerImages()
	}
	return nil, errors.New("neither format")
}

func TestArchivesAreRead(t *testing.T) {
	img := testImage(t)
	id, _ := img.ConfigName()
	digest, _ := img.Digest()
	for _, tc := range []struct {
		name      string
		archive   []byte
		wantNames []string
		manifest  string
	}{
		{"docker-archive", dockerArchive(t, img, "example.com/app:v1"), []string{"example.com/app:v1"}, ""},
		{"OCI, containerd's name", ociArchive(t, img, map[string]string{"io.containerd.image.name": "example.com/app:v2", "org.opencontainers.image.ref.name": "v2"}), []string{"example.com/app:v2"}, digest.String()},
		{"OCI, a full ref.name", ociArchive(t, img, map[string]string{"org.opencontainers.image.ref.name": "docker.io/library/app:v3"}), []string{"docker.io/library/app:v3"}, digest.String()},
		{"OCI, a tag alone: no name", ociArchive(t, img, map[string]string{"org.opencontainers.image.ref.name": "latest"}), nil, digest.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, gz := range []bool{false, true} {
				data := tc.archive
				if gz {
					data = gzipped(t, data)
				}
				found, err := scan(t, data)
				if err != nil {
					t.Fatalf("gzip %v: %v", gz, err)
				}
				if len(found) != 1 {
					t.Fatalf("found %d images, want 1", len(found))
				}
				im := found[0]
				var names []string
				for _, n := range im.names {
					names = append(names, n.String())
				}
				if strings.Join(names, ",") != strings.Join(tc.wantNames, ",") {
					t.Errorf("names %v, want %v", names, tc.wantNames)
				}
				if im.manifestDigest != tc.manifest {
					t.Errorf("manifest digest %q, want %q", im.manifestDigest, tc.manifest)
				}
				raw, _ := img.RawConfigFile()
				if !bytes.Equal(im.rawConfig, raw) {
					t.Errorf("config is not the image's (ID %s)", id)
				}
				if len(im.layers) != 2 {
					t.Errorf("%d layers, want 2", len(im.layers))
				}
			}
		})
	}
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	l, err := tarball.LayerFromReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Hostile or broken archives are refused with InvalidArgument before any
// layer is unpacked, each saying what is wrong.
func TestHostileArchivesAreRefused(t *testing.T) {
	img := testImage(t)
	docker := dockerArchive(t, img, "example.com/app:v1")
	oci := ociArchive(t, img, map[string]string{"io.containerd.image.name": "example.com/app:v1"})
	digest, _ := img.Digest()
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()
	big := bytes.Repeat([]byte(" "), maxDocument+1)
	for _, tc := range []struct {
		name, want string
		archive    []byte
	}{
		{"not a tar", "not a tar archive", []byte(strings.Repeat("garbage!", 200))},
		{"an entry twice", "twice", rewrite(t, docker, nil, map[string][]byte{"manifest.json": []byte("[]")})},
		{"docker config not its digest", "does not match the digest its name gives", rewrite(t, docker, func(n string, d []byte) []byte {
			if strings.HasPrefix(n, "sha256:") {
				return bytes.Replace(d, []byte(`"linux"`), []byte(`"LINUX"`), 1)
			}
			return d
		}, nil)},
		{"docker layer missing", "is not in the archive", rewrite(t, docker, func(n string, d []byte) []byte {
			if strings.HasSuffix(n, ".tar.gz") {
				return nil
			}
			return d
		}, nil)},
		{"docker layer out of the archive", "is not in the archive", rewrite(t, docker, func(n string, d []byte) []byte {
			if n == "manifest.json" {
				return []byte(strings.Replace(string(d), `"Layers":["`, `"Layers":["../../../etc/passwd","`, 1))
			}
			return d
		}, nil)},
		{"docker RepoTags not a name", "not a tagged name", rewrite(t, docker, func(n string, d []byte) []byte {
			if n == "manifest.json" {
				return []byte(strings.Replace(string(d), "example.com/app:v1", "UPPER CASE", 1))
			}
			return d
		}, nil)},
		{"OCI manifest tampered", "does not match its digest", rewrite(t, oci, func(n string, d []byte) []byte {
			if n == "blobs/sha256/"+digest.Hex {
				return append(d, ' ') // still the JSON it was
			}
			return d
		}, nil)},
		{"OCI layer missing", "is not in the archive", rewrite(t, oci, func(n string, d []byte) []byte {
			if n == "blobs/sha256/"+layerDigest.Hex {
				return nil
			}
			return d
		}, nil)},
		{"OCI layer of another size", "its manifest says", rewrite(t, oci, func(n string, d []byte) []byte {
			if n == "blobs/sha256/"+layerDigest.Hex {
				return append(d, 0)
			}
			return d
		}, nil)},
		{"OCI index too big", "more than the", rewrite(t, oci, func(n string, d []byte) []byte {
			if n == "index.json" {
				return append(d, big...)
			}
			return d
		}, nil)},
		{"OCI digest not sha256", "unsupported hash", rewrite(t, oci, func(n string, d []byte) []byte {
			if n == "index.json" {
				return []byte(strings.Replace(string(d), "sha256:"+digest.Hex, "md5:"+digest.Hex[:32], 1))
			}
			return d
		}, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scan(t, tc.archive)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not InvalidArgument", err)
			}
		})
	}
}

// An image index gives the host platform's manifest, and only that.
func TestArchiveIndexGivesTheHostsManifest(t *testing.T) {
	host := testImage(t)
	other := testImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		mutate.IndexAddendum{Add: host, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: HostArchitecture()}}},
	)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "example.com/multi:v1"})); err != nil {
		t.Fatal(err)
	}
	found, err := scan(t, tarDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := host.Digest()
	if len(found) != 1 || found[0].manifestDigest != want.String() {
		t.Fatalf("found %+v, want the host's manifest %s", found, want)
	}
	if len(found[0].names) != 1 || found[0].names[0].String() != "example.com/multi:v1" {
		t.Errorf("names %v, want the index's", found[0].names)
	}
}
