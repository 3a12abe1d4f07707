package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/test/harness"
	"github.com/crid-dev/crid/test/images/catalog"
)

// writeDockerArchive is `docker save` of img as tag, into a file.
func writeDockerArchive(t *testing.T, img v1.Image, tag string) string {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "docker.tar")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeOCIArchive is `podman save --format oci-archive` (an OCI layout in
// a tar) of img named ref, into a file.
func writeOCIArchive(t *testing.T, img v1.Image, ref string) string {
	t.Helper()
	dir := t.TempDir()
	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "oci.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", p, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	return p
}

// An archive of either format loads as a pull would: the same tree, the
// names it carries, and the layers shared with what is already there.
func TestImportArchives(t *testing.T) {
	harness.RequireRoot(t)
	img := assemble(t, layer1, layer2, layer3)
	for _, tc := range []struct {
		format, file, want string
	}{
		{"docker-archive", writeDockerArchive(t, img, "example.com/multi:docker"), "example.com/multi:docker"},
		{"oci-archive", writeOCIArchive(t, img, "example.com/multi:oci"), "example.com/multi:oci"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			im := newImages(t, "", nil)
			got, err := im.Import(context.Background(), tc.file, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != configID(t, img) || len(got[0].Layers) != 3 {
				t.Fatalf("imported %+v, want %s with 3 layers", got, configID(t, img))
			}
			if len(got[0].RepoTags) != 1 || got[0].RepoTags[0] != tc.want {
				t.Errorf("tags %v, want [%s]", got[0].RepoTags, tc.want)
			}
			checkTree(t, tree(t, mount(t, im, got[0])), wantTree)
			// Again, under another name: the same image, nothing unpacked.
			before := im.layerDirs(t)
			again, err := im.Import(context.Background(), tc.file, "example.com/renamed:1")
			if err != nil {
				t.Fatal(err)
			}
			if again[0].ID != got[0].ID || len(again[0].RepoTags) != 2 || len(im.List()) != 1 {
				t.Errorf("a second import: %+v, %d images", again[0], len(im.List()))
			}
			if after := im.layerDirs(t); len(after) != len(before) {
				t.Errorf("a second import unpacked again: %v, then %v", before, after)
			}
		})
	}
}

// A hostile layer in an archive is refused as in a pull: nothing written
// outside, no layer, no image left; so is a config lying about its layer.
func TestImportRefusesHostileArchives(t *testing.T) {
	harness.RequireRoot(t)
	outside := filepath.Join(t.TempDir(), "escaped")
	evil := assemble(t, []catalog.Entry{catalog.File("../../../../../../.."+outside, 0o644, []byte("out"))})
	good := assemble(t, []catalog.Entry{catalog.File("f", 0o644, []byte("good"))})
	cf, _ := good.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	lying, err := mutate.ConfigFile(good, cf)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"escaping entry, docker", writeDockerArchive(t, evil, "example.com/evil:1"), "layer"},
		{"escaping entry, OCI", writeOCIArchive(t, evil, "example.com/evil:1"), "layer"},
		{"lying diff ID", writeDockerArchive(t, lying, "example.com/lying:1"), "diff ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := newImages(t, "", nil)
			_, err := im.Import(context.Background(), tc.file, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import: %v, want a refusal naming the %s", err, tc.want)
			}
			if _, err := os.Stat(outside); err == nil {
				t.Fatalf("the archive wrote %s", outside)
			}
			if dirs := im.layerDirs(t); len(dirs) != 0 {
				t.Errorf("the refused import left layers %v", dirs)
			}
			if len(im.List()) != 0 {
				t.Error("the refused import left an image record")
			}
		})
	}
}

// `crid images import -` reads the archive on stdin, as `kind load` pipes
// it (to ctr, which deploy/kind/ctr turns into crid), and the running crid
// serves the image: ImageStatus finds it by name
// and a container runs from it.
func TestImportCommandLoadsIntoTheRunningCrid(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	d := harness.Start(t, cridBin, dir)
	img := harness.BusyboxImage(t)
	archive, err := os.ReadFile(writeOCIArchive(t, img, "example.com/imported/busybox:1"))
	if err != nil {
		t.Fatal(err)
	}
	// Through deploy/kind/ctr, with the arguments `kind load` gives ctr.
	cmd := exec.Command("../../deploy/kind/ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--digests", "--snapshotter=overlayfs", "-")
	cmd.Env = append(os.Environ(), "CRID="+cridBin, "CRID_ARGS="+strings.Join(harness.Args(dir), " "))
	cmd.Stdin = bytes.NewReader(archive)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+configID(t, img)+" example.com/imported/busybox:1") {
		t.Fatalf("kind's ctr images import -, through crid images import -: %v\n%s", err, out)
	}
	if out, err := exec.Command("../../deploy/kind/ctr", "containers", "list").CombinedOutput(); err == nil {
		t.Errorf("the ctr shim took a command it cannot do:\n%s", out)
	}
	rt, is := d.Clients(t)
	st, err := is.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "example.com/imported/busybox:1"}})
	if err != nil || st.Image == nil || st.Image.Id != configID(t, img) {
		t.Fatalf("ImageStatus of the imported image: %+v, %v", st, err)
	}
	harness.PodNet(t, dir, 31)
	pod := harness.RunPod(t, rt, harness.PodConfig("imported", nil))
	defer harness.RemovePod(t, rt, pod)
	ctr, err := rt.CreateContainer(context.Background(), &runtime.CreateContainerRequest{
		PodSandboxId: pod, SandboxConfig: harness.PodConfig("imported", nil),
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "c"},
			Image:    &runtime.ImageSpec{Image: "example.com/imported/busybox:1"},
			Command:  []string{"sh", "-c", "test -x /bin/busybox && exit 7"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	e := &ctrEnv{rt: rt}
	if st := e.waitExited(t, ctr.ContainerId); st.ExitCode != 7 {
		t.Errorf("the container from the imported image exited %d, want 7 (its busybox ran)", st.ExitCode)
	}

	// Refusals reach the command line with their reason.
	bad := exec.Command(cridBin, append(harness.Args(dir), "images", "import", "--name", "NOT A NAME", writeOCIArchive(t, img, "x"))...)
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "InvalidArgument") {
		t.Errorf("a bad --name: %v\n%s", err, out)
	}
}
