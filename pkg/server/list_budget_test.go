package server

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestListedSizeIsNoLessThanTheEntryItself(t *testing.T) {
	id := strings.Repeat("f", 64)
	for _, tc := range []struct {
		name                string
		labels, annotations map[string]string
	}{
		{"bare", nil, nil},
		{"the kubelet's labels", map[string]string{"io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "default", "io.kubernetes.container.name": "app"}, nil},
		{"many small annotations", nil, func() map[string]string {
			m := map[string]string{}
			for i := range 1000 {
				m[strings.Repeat("k", i%50+1)+string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
			}
			return m
		}()},
		{"one 256 KiB annotation", nil, map[string]string{"a": strings.Repeat("v", 256<<10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entry := &runtime.Container{
				Id: id, PodSandboxId: id, Metadata: &runtime.ContainerMetadata{Name: "app", Attempt: 12},
				Image: &runtime.ImageSpec{Image: "registry.k8s.io/pause:3.9"}, ImageRef: "sha256:" + id, ImageId: "sha256:" + id,
				State: runtime.ContainerState_CONTAINER_RUNNING, CreatedAt: 1 << 62, Labels: tc.labels, Annotations: tc.annotations,
			}
			list := &runtime.ListContainersResponse{Containers: []*runtime.Container{entry}}
			if got, real := listedSize(len("app"), "registry.k8s.io/pause:3.9", tc.labels, tc.annotations), proto.Size(list); got < real {
				t.Fatalf("listedSize %d is under the %d bytes the entry takes: the budget would let a List overflow", got, real)
			}
		})
	}
}

func TestFitsInListRefusesWhatWouldOverflow(t *testing.T) {
	if err := fitsInList("containers", listBudget-1000, 999); err != nil {
		t.Fatalf("refused what fits: %v", err)
	}
	if err := fitsInList("containers", listBudget-1000, 1001); err == nil {
		t.Fatal("accepted what would overflow a List reply")
	}
}
