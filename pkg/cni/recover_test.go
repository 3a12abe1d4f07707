package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// TestHostLocalLeasesNameThePod: a DEL without a cached result finds the
// pod's addresses in host-local's lease files (one per address, holding
// the container ID and interface), and no one else's.
func TestHostLocalLeasesNameThePod(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "podnet")
	os.MkdirAll(dir, 0o755)
	for name, content := range map[string]string{
		"10.88.0.7":          "pod-a\r\neth0",
		"fd00::7":            "pod-a\r\neth0",
		"10.88.0.8":          "pod-b\r\neth0",
		"10.88.0.9":          "pod-a\r\nnet1", // another interface of the pod
		"last_reserved_ip.0": "10.88.0.9",
		"lock":               "",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	list, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"podnet","plugins":[
		{"type":"bridge","ipam":{"type":"host-local","dataDir":%q}},{"type":"firewall"}]}`, data)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ip := range hostLocalLeases(list, "pod-a", "eth0") {
		got = append(got, ip.String())
	}
	slices.Sort(got)
	if want := []string{"10.88.0.7/32", "fd00::7/128"}; !slices.Equal(got, want) {
		t.Errorf("leases %v, want %v", got, want)
	}
	if res := recoveredResult(list, &libcni.RuntimeConf{ContainerID: "pod-c", IfName: "eth0"}); res != nil {
		t.Errorf("a pod without leases got %+v", res)
	}
}
