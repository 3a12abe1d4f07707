package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crid-dev/crid/pkg/cni"
	"github.com/crid-dev/crid/test/harness"
)

// An attachment no sandbox record names (crid lost it in a crash) is
// detached by GC: its veth goes and its IP lease is given back.
func TestGCDetachesForgottenAttachments(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	harness.PodNet(t, dir, 9)
	netns := "crid-it-gc"
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", netns).Run()
	m := cni.NewManager(filepath.Join(dir, "net.d"), []string{"/usr/lib/cni", "/opt/cni/bin"}, filepath.Join(dir, "cache"), nil)
	ctx := context.Background()
	kept := cni.Pod{ID: "kept", Name: "kept", Namespace: "it", UID: "k", NetNS: "/run/netns/" + netns}
	if _, err := m.Attach(ctx, kept); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "add", netns+"-2").CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", netns+"-2").Run()
	lost := cni.Pod{ID: "lost", Name: "lost", Namespace: "it", UID: "l", NetNS: "/run/netns/" + netns + "-2"}
	att, err := m.Attach(ctx, lost)
	if err != nil {
		t.Fatal(err)
	}
	lease := filepath.Join(dir, "ipam", "crid-it-9", att.IPs[0].String())
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("no lease for %s: %v", att.IPs[0], err)
	}
	if err := m.GC(ctx, []string{"kept"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Errorf("the lost pod's lease %s is still held", att.IPs[0])
	}
	out, _ := exec.Command("ip", "netns", "exec", netns+"-2", "ip", "-brief", "link").Output()
	if strings.Contains(string(out), "eth0") {
		t.Errorf("the lost pod's eth0 is still there:\n%s", out)
	}
	out, _ = exec.Command("ip", "netns", "exec", netns, "ip", "-brief", "link").Output()
	if !strings.Contains(string(out), "eth0") {
		t.Errorf("GC detached the pod it was told to keep:\n%s", out)
	}
	if err := m.Detach(ctx, kept); err != nil {
		t.Fatal(err)
	}
}
