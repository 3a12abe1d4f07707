package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/test/harness"
	"github.com/crid-dev/crid/test/images/catalog"
)

// images is an image.Service on a scratch root.
type images struct {
	*image.Service
	root  string
	store *store.Store
	pulls []int64 // bytes fetched by each pull, from the OnPull hook
	mu    sync.Mutex
}

func newImages(t *testing.T, registriesConf string, edit func(*image.Options)) *images {
	t.Helper()
	root := t.TempDir()
	st, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	im := &images{root: root, store: st}
	opts := image.Options{Layout: image.Layout{Root: root}, Store: st, RegistriesConf: registriesConf,
		OnPull: func(_ string, n int64, _ time.Duration, err error) {
			im.mu.Lock()
			if err == nil {
				im.pulls = append(im.pulls, n)
			}
			im.mu.Unlock()
		}}
	if edit != nil {
		edit(&opts)
	}
	svc, err := image.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	im.Service = svc
	return im
}

func (im *images) layerDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(im.root, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func assemble(t *testing.T, layers ...[]catalog.Entry) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, entries := range layers {
		l, err := catalog.Layer(entries)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := catalog.Assemble(v1.Config{Cmd: []string{"sh"}}, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func configID(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func writeConf(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "registries.conf")
	os.WriteFile(p, []byte(text), 0o644)
	return p
}

// mount stacks img's layers read-only in a temp dir and returns it.
func mount(t *testing.T, im *images, img *image.Image) string {
	t.Helper()
	target := t.TempDir()
	if err := image.MountOverlay(target, im.LayerDirs(img), "", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(target, syscall.MNT_DETACH) })
	return target
}

// tree describes every path below dir: type, mode, content or link.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "symlink " + l
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
		default:
			data, _ := os.ReadFile(p)
			out[rel] = fmt.Sprintf("file %o %d:%d links=%d %q", st.Mode&0o7777, st.Uid, st.Gid, st.Nlink, data)
		}
		return nil
	})
	return out
}

func TestPullSingleLayerBusybox(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	base, err := catalog.BusyboxLayer("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	img, err := catalog.Assemble(v1.Config{Cmd: []string{"sh"}, User: "1002"}, base)
	if err != nil {
		t.Fatal(err)
	}
	harness.Push(t, reg.Addr+"/library/busybox:1.36", img)
	im := newImages(t, "", nil)

	got, err := im.Pull(context.Background(), reg.Addr+"/library/busybox:1.36", image.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configID(t, img) || len(got.Layers) != 1 {
		t.Fatalf("pulled %s with %d layers, want %s", got.ID, len(got.Layers), configID(t, img))
	}
	if want := reg.Addr + "/library/busybox:1.36"; len(got.RepoTags) != 1 || got.RepoTags[0] != want {
		t.Errorf("tags %v, want [%s]", got.RepoTags, want)
	}
	if len(got.RepoDigests) != 1 || !strings.HasPrefix(got.RepoDigests[0], reg.Addr+"/library/busybox@sha256:") {
		t.Errorf("digests %v", got.RepoDigests)
	}
	root := mount(t, im, got)
	var sh, ls, bb syscall.Stat_t
	syscall.Lstat(filepath.Join(root, "bin/sh"), &sh)
	syscall.Lstat(filepath.Join(root, "bin/ls"), &ls)
	syscall.Lstat(filepath.Join(root, "bin/busybox"), &bb)
	if sh.Ino != bb.Ino || ls.Ino != bb.Ino || bb.Mode&0o777 != 0o755 {
		t.Errorf("applets are not 0755 hard links of busybox: sh %d ls %d busybox %d mode %o", sh.Ino, ls.Ino, bb.Ino, bb.Mode)
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp lost its sticky bit: %v", fi)
	}

	// By ID, by digest, and by a second tag of the same image: one record.
	for _, ref := range []string{got.ID, got.RepoDigests[0], strings.TrimPrefix(got.ID, "sha256:")[:12]} {
		if g, err := im.Get(ref); err != nil || g.ID != got.ID {
			t.Errorf("Get(%s): %v, %v", ref, g, err)
		}
	}
	harness.Push(t, reg.Addr+"/library/busybox:latest", img)
	again, err := im.Pull(context.Background(), reg.Addr+"/library/busybox", image.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if len(im.List()) != 1 || len(again.RepoTags) != 2 {
		t.Fatalf("a second tag made %d images, tags %v", len(im.List()), again.RepoTags)
	}
	if n := im.pulls[len(im.pulls)-1]; n != 0 {
		t.Errorf("the second tag fetched %d bytes again", n)
	}
}

// The layers of the multi-layer image, and the tree they must make.
var (
	layer1 = []catalog.Entry{
		catalog.Dir("a", 0o755), catalog.File("a/keep", 0o644, []byte("keep")), catalog.File("a/gone", 0o644, []byte("gone")),
		catalog.Dir("b", 0o750), catalog.File("b/old1", 0o644, []byte("1")), catalog.File("b/old2", 0o644, []byte("2")),
		catalog.Dir("c", 0o755), catalog.File("c/file", 0o644, []byte("c")),
		catalog.File("x", 0o640, []byte("shared")), catalog.HardLink("y", "x", 0o640),
		{Path: "owned", Type: '0', Mode: 0o4711, UID: 1000, GID: 50, Data: []byte("suid")},
		catalog.Symlink("abs", "/a/keep"),
	}
	layer2 = []catalog.Entry{
		catalog.Dir("a", 0o755), catalog.File("a/.wh.gone", 0o644, nil),
		catalog.Dir("b", 0o750), catalog.File("b/.wh..wh..opq", 0o644, nil), catalog.File("b/new", 0o600, []byte("new")),
		catalog.File("c/file", 0o644, []byte("changed")),
		catalog.Dir("z", 0o755), catalog.File("z/hl1", 0o644, []byte("hl")), catalog.HardLink("z/hl2", "z/hl1", 0o644),
	}
	layer3 = []catalog.Entry{
		catalog.File(".wh.c", 0o644, nil), catalog.File("d", 0o644, []byte("d")),
	}
	wantTree = map[string]string{
		"a":      "dir 755",
		"a/keep": `file 644 0:0 links=1 "keep"`,
		"b":      "dir 750",
		"b/new":  `file 600 0:0 links=1 "new"`,
		"x":      `file 640 0:0 links=2 "shared"`,
		"y":      `file 640 0:0 links=2 "shared"`,
		"owned":  `file 4711 1000:50 links=1 "suid"`,
		"abs":    "symlink /a/keep",
		"z":      "dir 755",
		"z/hl1":  `file 644 0:0 links=2 "hl"`,
		"z/hl2":  `file 644 0:0 links=2 "hl"`,
		"d":      `file 644 0:0 links=1 "d"`,
	}
)

func TestPullMultiLayerWithWhiteoutsAndHardLinks(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	img := assemble(t, layer1, layer2, layer3)
	harness.Push(t, reg.Addr+"/multi:1", img)
	im := newImages(t, "", nil)
	got, err := im.Pull(context.Background(), reg.Addr+"/multi:1", image.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Layers) != 3 {
		t.Fatalf("%d layers", len(got.Layers))
	}
	checkTree(t, tree(t, mount(t, im, got)), wantTree)
}

// checkTree fails the test with every difference of a merged tree from
// the one wanted.
func checkTree(t *testing.T, gotTree, wantTree map[string]string) {
	t.Helper()
	var diffs []string
	for p, want := range wantTree {
		if gotTree[p] != want {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", p, gotTree[p], want))
		}
	}
	for p, g := range gotTree {
		if _, ok := wantTree[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %q", p, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("merged tree differs:\n%s", strings.Join(diffs, "\n"))
	}
}

func TestPullMultiArchIndexPicksTheHostPlatform(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	mk := func(arch string) v1.Image {
		img := assemble(t, []catalog.Entry{catalog.File("arch", 0o644, []byte(arch))})
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Architecture = arch
		img, _ = mutate.ConfigFile(img, cf)
		return img
	}
	host, other := "amd64", "arm64"
	if hostArch := image.HostArchitecture(); hostArch != "amd64" {
		host, other = hostArch, "amd64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: mk(other), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mk(host), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: host}}},
	)
	ref, _ := name.ParseReference(reg.Addr+"/multiarch:1", name.Insecure)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	im := newImages(t, "", nil)
	got, err := im.Pull(context.Background(), reg.Addr+"/multiarch:1", image.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configID(t, mk(host)) {
		t.Fatalf("pulled %s, not the %s image", got.ID, host)
	}
	idxDigest, _ := idx.Digest()
	if got.RepoDigests[0] != reg.Addr+"/multiarch@"+idxDigest.String() {
		t.Errorf("repo digest %s is not the index's %s", got.RepoDigests[0], idxDigest)
	}
	if data, _ := os.ReadFile(filepath.Join(mount(t, im, got), "arch")); string(data) != host {
		t.Errorf("unpacked the %q layer", data)
	}
}

func TestPullZstdAndUncompressedLayers(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	zl, err := catalog.Layer([]catalog.Entry{catalog.File("z", 0o644, []byte("zstd"))}, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	img, err := catalog.Assemble(v1.Config{}, zl)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	harness.Push(t, reg.Addr+"/zstd:1", img)
	im := newImages(t, "", nil)
	got, err := im.Pull(context.Background(), reg.Addr+"/zstd:1", image.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Layers[0].MediaType != string(types.OCILayerZStd) {
		t.Errorf("media type %s", got.Layers[0].MediaType)
	}
	if data, _ := os.ReadFile(filepath.Join(mount(t, im, got), "z")); string(data) != "zstd" {
		t.Errorf("zstd layer content %q", data)
	}
}

func TestPullWithBasicAuth(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "puller", "s3cret")
	img := assemble(t, []catalog.Entry{catalog.File("private", 0o644, []byte("p"))})
	harness.Push(t, reg.Addr+"/private:1", img, remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret"}))
	im := newImages(t, "", nil)
	ctx := context.Background()

	_, err := im.Pull(ctx, reg.Addr+"/private:1", image.Auth{})
	if err == nil || !strings.Contains(err.Error(), "check the pull secret") {
		t.Fatalf("anonymous pull: %v", err)
	}
	if _, err := im.Pull(ctx, reg.Addr+"/private:1", image.Auth{Username: "puller", Password: "wrong"}); err == nil {
		t.Fatal("a wrong password pulled")
	}
	got, err := im.Pull(ctx, reg.Addr+"/private:1", image.Auth{Username: "puller", Password: "s3cret"})
	if err != nil || got.ID != configID(t, img) {
		t.Fatalf("pull with credentials: %v", err)
	}
}

func TestPullThroughMirrorsAndRemaps(t *testing.T) {
	harness.RequireRoot(t)
	mirror := harness.StartRegistry(t, "", "")
	primary := harness.StartRegistry(t, "", "")
	onMirror := assemble(t, []catalog.Entry{catalog.File("from", 0o644, []byte("mirror"))})
	onPrimary := assemble(t, []catalog.Entry{catalog.File("from", 0o644, []byte("primary"))})
	harness.Push(t, mirror.Addr+"/cache/team/app:1", onMirror)
	harness.Push(t, primary.Addr+"/team/app:2", onPrimary)
	conf := writeConf(t, fmt.Sprintf(`
[[registry]]
prefix = "images.example.invalid/team"
location = "%s/team"
[[registry.mirror]]
location = "%s/cache/team"

[[registry]]
prefix = "remapped.example.invalid"
location = "%s/nothing-here"
`, primary.Addr, mirror.Addr, primary.Addr))
	im := newImages(t, conf, nil)
	ctx := context.Background()

	got, err := im.Pull(ctx, "images.example.invalid/team/app:1", image.Auth{})
	if err != nil || got.ID != configID(t, onMirror) {
		t.Fatalf("tag on the mirror: %v", err)
	}
	if got.RepoTags[0] != "images.example.invalid/team/app:1" {
		t.Errorf("the record names the mirror, not the image: %v", got.RepoTags)
	}
	got, err = im.Pull(ctx, "images.example.invalid/team/app:2", image.Auth{})
	if err != nil || got.ID != configID(t, onPrimary) {
		t.Fatalf("tag only at the location, after the mirror missed: %v", err)
	}
	// A remapped prefix fails where it was remapped to and is never
	// looked up at its own host.
	_, err = im.Pull(ctx, "remapped.example.invalid/app:1", image.Auth{})
	if !errors.Is(err, errdefs.ErrNotFound) || strings.Contains(err.Error(), "remapped.example.invalid/v2") || !strings.Contains(err.Error(), primary.Addr) {
		t.Fatalf("remapped pull: %v", err)
	}
}

func TestCorruptLayerIsRefusedAndLeavesNothing(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	good := assemble(t, []catalog.Entry{catalog.File("f", 0o644, []byte("good"))})
	harness.Push(t, reg.Addr+"/corrupt:1", good)
	layers, _ := good.Layers()
	digest, _ := layers[0].Digest()
	// The registry checks digests when it is pushed to, not when it serves:
	// swap the blob on its disk.
	// Same size, one byte changed, so only the digest can tell.
	data, err := os.ReadFile(reg.BlobPath(digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(reg.BlobPath(digest.String()), data, 0o644); err != nil {
		t.Fatal(err)
	}
	im := newImages(t, "", nil)
	_, err = im.Pull(context.Background(), reg.Addr+"/corrupt:1", image.Auth{})
	if err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("a corrupt layer was accepted: %v", err)
	}
	if dirs := im.layerDirs(t); len(dirs) != 0 {
		t.Errorf("the refused pull left %v", dirs)
	}
	if len(im.List()) != 0 {
		t.Error("the refused pull left an image record")
	}

	// A config whose diff ID does not match its layer is refused too. (A
	// layer of its own: the registry shares blobs between repositories.)
	other := assemble(t, []catalog.Entry{catalog.File("f", 0o644, []byte("other"))})
	cf, _ := other.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	lying, _ := mutate.ConfigFile(other, cf)
	harness.Push(t, reg.Addr+"/lying:1", lying)
	_, err = im.Pull(context.Background(), reg.Addr+"/lying:1", image.Auth{})
	if err == nil || !strings.Contains(err.Error(), "diff ID") {
		t.Fatalf("a lying config was accepted: %v", err)
	}
}

// stallProxy forwards to a registry but, for blobs, sends a little and
// then nothing until the test ends.
func stallProxy(t *testing.T, target string) string {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	stop := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") || strings.Contains(r.URL.Path, "uploads") {
			rp.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get("http://" + target + r.URL.Path)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		defer resp.Body.Close()
		if resp.ContentLength < 2048 { // the config: let it through
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(resp.ContentLength))
		w.WriteHeader(200)
		io.CopyN(w, resp.Body, 1024)
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { close(stop); srv.Close() })
	return l.Addr().String()
}

// bigImage is one layer of 256 KiB whose blob, though it compresses, is
// larger than what stallProxy lets through; seed makes images differ.
func bigImage(t *testing.T, seed int) v1.Image {
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i * seed % 251)
	}
	return assemble(t, []catalog.Entry{catalog.File("big", 0o644, big)})
}

func TestStalledDownloadFails(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	harness.Push(t, reg.Addr+"/big:1", bigImage(t, 7))
	proxy := stallProxy(t, reg.Addr)
	im := newImages(t, "", func(o *image.Options) { o.StallTimeout = 500 * time.Millisecond })
	start := time.Now()
	_, err := im.Pull(context.Background(), proxy+"/big:1", image.Auth{})
	var stall *image.StallError
	if !errors.As(err, &stall) {
		t.Fatalf("a stalled download ended with %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the stall took %v to notice", took)
	}
	if dirs := im.layerDirs(t); len(dirs) != 0 {
		t.Errorf("the stalled pull left %v", dirs)
	}
}

func TestConcurrentPullsShareWorkAndRemoveFreesOnlyUnusedLayers(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	base := []catalog.Entry{catalog.File("base", 0o644, []byte(strings.Repeat("b", 100000)))}
	one := assemble(t, base, []catalog.Entry{catalog.File("one", 0o644, []byte("1"))})
	two := assemble(t, base, []catalog.Entry{catalog.File("two", 0o644, []byte("2"))})
	harness.Push(t, reg.Addr+"/one:1", one)
	harness.Push(t, reg.Addr+"/two:1", two)
	reg2 := prometheus.NewRegistry()
	im := newImages(t, "", func(o *image.Options) { o.Metrics = metrics.New(reg2) })
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, ref := range []string{"/one:1", "/one:1", "/two:1", "/two:1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := im.Pull(ctx, reg.Addr+ref, image.Auth{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if dirs := im.layerDirs(t); len(dirs) != 3 {
		t.Fatalf("layer dirs %v, want 3 (one shared base)", dirs)
	}
	var fetched int64
	for _, n := range im.pulls {
		fetched += n
	}
	baseLayers, _ := one.Layers()
	baseSize, _ := baseLayers[0].Size()
	if fetched > 2*baseSize {
		t.Errorf("fetched %d bytes for two images sharing a %d-byte base: the base came twice", fetched, baseSize)
	}
	// Four pulls (two shared) of 2 layers each: the base and each image's
	// own layer fetched once, whatever the order.
	if got := layerCounts(t, reg2); got["fetched"] != 3 || got["fetched"]+got["reused"] != 4 {
		t.Errorf("crid_image_pull_layers_total %v, want 3 fetched of the 4 layers the two pulls used", got)
	}

	if err := im.Remove(ctx, reg.Addr+"/one:1"); err != nil {
		t.Fatal(err)
	}
	if dirs := im.layerDirs(t); len(dirs) != 2 {
		t.Fatalf("after removing one image: %v, want the shared base and two's own", dirs)
	}
	if err := im.Remove(ctx, configID(t, two)); err != nil {
		t.Fatal(err)
	}
	if dirs := im.layerDirs(t); len(dirs) != 0 {
		t.Fatalf("after removing both: %v", dirs)
	}
	if err := im.Remove(ctx, configID(t, two)); err != nil {
		t.Fatalf("removing a removed image: %v", err)
	}
}

func TestStartUpCleansInterruptedPulls(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	img := assemble(t, []catalog.Entry{catalog.File("f", 0o644, []byte("f"))})
	harness.Push(t, reg.Addr+"/f:1", img)
	im := newImages(t, "", nil)
	if _, err := im.Pull(context.Background(), reg.Addr+"/f:1", image.Auth{}); err != nil {
		t.Fatal(err)
	}
	layers := filepath.Join(im.root, "layers")
	// What a crash mid-pull leaves: a temporary dir, and a layer dir whose
	// record was never written.
	os.MkdirAll(filepath.Join(layers, ".tmp-sha256-abc-123", "etc"), 0o755)
	os.MkdirAll(filepath.Join(layers, "sha256-"+strings.Repeat("e", 64)), 0o755)

	again, err := image.New(image.Options{Layout: image.Layout{Root: im.root}, Store: im.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.CollectLayers(); err != nil { // as crid starts, once containers hold theirs
		t.Fatal(err)
	}
	if dirs := im.layerDirs(t); len(dirs) != 1 {
		t.Fatalf("after restart: %v, want only the image's layer", dirs)
	}
	if got, err := again.Get(reg.Addr + "/f:1"); err != nil || got.ID != configID(t, img) {
		t.Fatalf("the image was lost across the restart: %v", err)
	}
}

// TestHeldLayersOutliveTheirImage: a container's root stands on its
// image's layers, whatever becomes of the image. Before holds, start-up
// freed the layers of a removed image that a running container still
// used: its collection ran before any container was loaded.
func TestHeldLayersOutliveTheirImage(t *testing.T) {
	harness.RequireRoot(t)
	ctx := context.Background()
	reg := harness.StartRegistry(t, "", "")
	harness.Push(t, reg.Addr+"/held:1", assemble(t, []catalog.Entry{catalog.File("f", 0o644, []byte("f"))}))
	im := newImages(t, "", nil)
	img, err := im.Pull(ctx, reg.Addr+"/held:1", image.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	var chain []string
	for _, l := range img.Layers {
		chain = append(chain, l.ChainID)
	}
	im.Hold("container-1", chain)
	if err := im.Remove(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if dirs := im.layerDirs(t); len(dirs) != len(chain) {
		t.Fatalf("after removing the image: %v, want the held layers", dirs)
	}

	// A restart: the container holds again before the collection.
	again, err := image.New(image.Options{Layout: image.Layout{Root: im.root}, Store: im.store})
	if err != nil {
		t.Fatal(err)
	}
	again.Hold("container-1", chain)
	if err := again.CollectLayers(); err != nil {
		t.Fatal(err)
	}
	if dirs := im.layerDirs(t); len(dirs) != len(chain) {
		t.Fatalf("after a restart: %v, want the held layers", dirs)
	}
	again.Release("container-1")
	if err := again.CollectLayers(); err != nil {
		t.Fatal(err)
	}
	if dirs := im.layerDirs(t); len(dirs) != 0 {
		t.Fatalf("after the container let go: %v", dirs)
	}
}

func TestCancelledPullLeavesNothing(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	harness.Push(t, reg.Addr+"/big:1", bigImage(t, 13))
	proxy := stallProxy(t, reg.Addr)
	im := newImages(t, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := im.Pull(ctx, proxy+"/big:1", image.Auth{})
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled pull ended with %v", err)
	}
	if dirs := im.layerDirs(t); len(dirs) != 0 {
		t.Errorf("the cancelled pull left %v", dirs)
	}
	if len(im.List()) != 0 {
		t.Error("the cancelled pull left an image")
	}
}

// TestManyLayersMount stacks more layers, with longer paths, than a
// classic overlay option string can carry in one page.
func TestManyLayersMount(t *testing.T) {
	harness.RequireRoot(t)
	base := t.TempDir()
	var lowers []string
	for i := range 150 {
		d := filepath.Join(base, fmt.Sprintf("layer-with-a-deliberately-long-directory-name-%03d", i))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "top"), []byte(fmt.Sprint(i)), 0o644)
		os.WriteFile(filepath.Join(d, fmt.Sprintf("only-%03d", i)), nil, 0o644)
		lowers = append(lowers, d)
	}
	if n := len(strings.Join(lowers, ":")); n < 4096 {
		t.Fatalf("the lower dirs take only %d bytes: the test proves nothing", n)
	}
	upper, work, target := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, target} {
		os.Mkdir(d, 0o755)
	}
	if err := image.MountOverlay(target, lowers, upper, work); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(target, syscall.MNT_DETACH)
	// A writable root skips the upper's syncs (see MountOverlay): the
	// kernel shows it in the mount's super options, as "volatile" before
	// Linux 6.7 and "fsync=volatile" since.
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); !mountHas(string(mi), target, "volatile") && !mountHas(string(mi), target, "fsync=volatile") {
		t.Errorf("the overlay at %s is not volatile", target)
	}
	if data, _ := os.ReadFile(filepath.Join(target, "top")); string(data) != "149" {
		t.Errorf("top is %q: the last layer must be on top", data)
	}
	if _, err := os.Stat(filepath.Join(target, "only-000")); err != nil {
		t.Errorf("the lowest layer is missing: %v", err)
	}
	if err := os.WriteFile(filepath.Join(target, "written"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(upper, "written")); err != nil {
		t.Errorf("a write did not land in the upper dir: %v", err)
	}
}

// TestPullsShareConnections: pulls reuse the connections of those before
// them (one transport for all), where a transport per pull opened new
// ones each time and left them idle, with two goroutines each.
func TestPullsShareConnections(t *testing.T) {
	harness.RequireRoot(t)
	reg := harness.StartRegistry(t, "", "")
	var accepted atomic.Int32
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptEach(t, l, func(c net.Conn) {
		go func() {
			defer c.Close()
			// The client tries TLS first on a registry it may reach
			// insecurely (a first byte of 0x16): only the plain HTTP
			// connections that carry the pulls count.
			first := make([]byte, 1)
			if _, err := io.ReadFull(c, first); err != nil || first[0] == 0x16 {
				return
			}
			accepted.Add(1)
			up, err := net.Dial("tcp", reg.Addr)
			if err != nil {
				return
			}
			defer up.Close()
			up.Write(first)
			go io.Copy(up, c)
			io.Copy(c, up)
		}()
	})
	im := newImages(t, "", nil)
	for i := 0; i < 5; i++ {
		img := assemble(t, []catalog.Entry{catalog.File("f", 0o644, []byte(fmt.Sprint(i)))})
		harness.Push(t, fmt.Sprintf("%s/conn%d:1", reg.Addr, i), img)
		if _, err := im.Pull(context.Background(), fmt.Sprintf("%s/conn%d:1", l.Addr(), i), image.Auth{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := accepted.Load(); n > 3 {
		t.Errorf("5 pulls, one after another, opened %d connections", n)
	}
}

// silentRegistry accepts connections and never answers a byte.
func silentRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

func TestRegistryThatNeverAnswersFailsThePullInTime(t *testing.T) {
	harness.RequireRoot(t)
	addr := silentRegistry(t)
	im := newImages(t, "", func(o *image.Options) {
		o.Timeouts.ResponseHeader, o.Timeouts.TLSHandshake = time.Second, time.Second
	})
	start := time.Now()
	_, err := im.Pull(context.Background(), addr+"/silent:1", image.Auth{})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a pull from a registry that never answers: %v; want a timeout", err)
	}
	// A loopback registry is tried over TLS, then plain HTTP: one
	// timeout each, and no retry of a timeout.
	if took > 5*time.Second {
		t.Errorf("the pull took %v to fail with 1 s handshake and response-header timeouts", took)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
}

func TestConcurrentPullsEachEndByTheirOwnDeadline(t *testing.T) {
	harness.RequireRoot(t)
	addr := silentRegistry(t)
	im := newImages(t, "", func(o *image.Options) { o.Timeouts.ResponseHeader = time.Minute })
	deadlines := []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond}
	took := make([]time.Duration, len(deadlines))
	errs := make([]error, len(deadlines))
	var wg sync.WaitGroup
	for i, d := range deadlines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			start := time.Now()
			_, errs[i] = im.Pull(ctx, addr+"/silent:1", image.Auth{})
			took[i] = time.Since(start)
		}()
		time.Sleep(50 * time.Millisecond) // the second joins the first's pull
	}
	wg.Wait()
	for i, d := range deadlines {
		if !errors.Is(errs[i], context.DeadlineExceeded) {
			t.Errorf("pull %d (deadline %v): %v; want DeadlineExceeded", i, d, errs[i])
		}
		if took[i] < d-100*time.Millisecond || took[i] > d+2*time.Second {
			t.Errorf("pull %d with a %v deadline ended after %v: not by its own deadline", i, d, took[i])
		}
	}
}

func layerCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "crid_image_pull_layers_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// mountHas says whether the mount at target lists opt among its super
// options (mountinfo's last field).
func mountHas(mountinfo, target, opt string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == target && slices.Contains(strings.Split(f[len(f)-1], ","), opt) {
			return true
		}
	}
	return false
}
