package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/test/harness"
)

// installScript runs hack/install.sh with args and returns what it said.
func installScript(t *testing.T, wantErr bool, args ...string) string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"../../hack/install.sh"}, args...)...).CombinedOutput()
	if (err != nil) != wantErr {
		t.Fatalf("install.sh %v: %v (want error: %v)\n%s", args, err, wantErr, out)
	}
	return string(out)
}

// hack/install.sh into a scratch root, as an operator installs a node (or
// a node image is built): everything in place, a second run (an upgrade)
// keeps the operator's files, uninstall removes what it put, purge keeps
// what the operator changed and refuses while pods are mounted.
func TestInstallIntoAScratchRoot(t *testing.T) {
	harness.RequireRoot(t)
	root := t.TempDir()
	installScript(t, false, "--root", root)
	files := map[string]os.FileMode{
		"usr/local/bin/crid":                    0o755,
		"usr/local/bin/crid-monitor":            0o755,
		"usr/local/bin/crid-podmon":             0o755,
		"etc/systemd/system/crid.service":       0o644,
		"etc/crid/crid.toml":                    0o644,
		"etc/cni/net.d/10-crid-bridge.conflist": 0o644,
		"etc/crictl.yaml":                       0o644,
	}
	for f, mode := range files {
		fi, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", f, fi.Mode().Perm(), mode)
		}
	}
	out, err := exec.Command(filepath.Join(root, "usr/local/bin/crid"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "crid") {
		t.Errorf("installed crid version: %v\n%s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/crid.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "Delegate=yes", "KillMode=process", "OOMScoreAdjust=-999",
		"LimitNOFILE=", "LimitNPROC=", "LimitCORE=", "Restart=always", "ExecStart=/usr/local/bin/crid --config /etc/crid/crid.toml"} {
		if !bytes.Contains(unit, []byte("\n"+want)) {
			t.Errorf("unit lacks %q", want)
		}
	}
	verifyUnit(t, root, unit)

	// An upgrade: the operator's config stays as they left it.
	cfg := filepath.Join(root, "etc/crid/crid.toml")
	mine := []byte("log_level = \"debug\"\n")
	if err := os.WriteFile(cfg, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	installScript(t, false, "--root", root)
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, mine) {
		t.Errorf("a second install overwrote the operator's crid.toml:\n%s", got)
	}

	// Purge refuses while something is mounted under crid's state.
	state := filepath.Join(root, "var/lib/crid/containers/x")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(state, unix.MNT_DETACH)
	if out := installScript(t, true, "--root", root, "--uninstall", "--purge"); !strings.Contains(out, "still has mounts") {
		t.Errorf("purge with a mount under the state: %s", out)
	}
	if err := unix.Unmount(state, 0); err != nil {
		t.Fatal(err)
	}
	installScript(t, false, "--root", root, "--uninstall", "--purge")
	for f := range files {
		_, err := os.Stat(filepath.Join(root, f))
		if f == "etc/crid/crid.toml" {
			if err != nil {
				t.Errorf("purge removed the operator's changed %s", f)
			}
		} else if err == nil {
			t.Errorf("%s left after purge", f)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/crid")); err == nil {
		t.Error("crid's state left after purge")
	}
}

// verifyUnit has systemd-analyze check the unit, with ExecStart pointed at
// the scratch root's crid (verify checks that it is executable).
func verifyUnit(t *testing.T, root string, unit []byte) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("no systemd-analyze here: the unit is checked by its keys only")
		return
	}
	dir := t.TempDir()
	u := bytes.ReplaceAll(unit, []byte("ExecStart=/usr/local/bin/"), []byte("ExecStart="+root+"/usr/local/bin/"))
	if err := os.WriteFile(filepath.Join(dir, "crid.service"), u, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "crid.service")).CombinedOutput()
	// Complaints about other units (the host's) are not this unit's.
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "crid.service") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
