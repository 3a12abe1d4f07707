package wirelist

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type rec struct {
	id    string
	state runtime.ContainerState
}

func (r *rec) RecordID() string { return r.id }

func (r *rec) msgOf() proto.Message { return r.msg() }

func (r *rec) msg() *runtime.Container {
	return &runtime.Container{Id: r.id, PodSandboxId: "pod-" + r.id, Metadata: &runtime.ContainerMetadata{Name: "c", Attempt: 1},
		Image: &runtime.ImageSpec{Image: "busybox"}, State: r.state, CreatedAt: 1, Labels: map[string]string{"app": r.id}}
}

func recs(n int) []*rec {
	var out []*rec
	for i := range n {
		out = append(out, &rec{id: fmt.Sprintf("%064x", i), state: runtime.ContainerState_CONTAINER_RUNNING})
	}
	return out
}

// The client's view of a filled response is the response built plainly,
// record by record, whatever changed between the calls; and a record is
// encoded once while it stays the same.
func TestFilledResponseIsWhatTheClientWouldGetBuiltPlainly(t *testing.T) {
	all := recs(5)
	encoded := 0
	e := New(&runtime.ListContainersResponse{}, "containers", func(r *rec) proto.Message { encoded++; return r.msg() })
	var everything func(*rec) bool // nil: the kubelet's relist, no filter
	anything := func(*rec) bool { return true }
	running := func(r *rec) bool { return r.state == runtime.ContainerState_CONTAINER_RUNNING }

	steps := []struct {
		name        string
		change      func()
		keep        func(*rec) bool
		wantEncoded int  // by this step
		wantKept    int  // entries kept after it
		wantReused  bool // the step before's bytes, not built again
	}{
		{"the first list", func() {}, everything, 5, 5, false},
		{"nothing changed", func() {}, everything, 5, 5, true},
		{"the same records in another slice", func() { all = append([]*rec(nil), all...) }, everything, 5, 5, true},
		{"one record changed", func() { all[2] = &rec{id: all[2].id, state: runtime.ContainerState_CONTAINER_EXITED} }, everything, 6, 5, false},
		{"a filter", func() {}, running, 6, 5, false},
		{"the same filter", func() {}, running, 6, 5, true},
		{"no filter after one", func() {}, everything, 6, 5, false},
		{"a filter that keeps all", func() {}, anything, 6, 5, true},
		{"two records gone", func() { all = append(all[:1], all[3:]...) }, everything, 6, 3, false},
		{"a new record, filtered out", func() { all = append(all, &rec{id: "new", state: runtime.ContainerState_CONTAINER_CREATED}) }, running, 6, 4, true},
		{"the new record listed", func() {}, everything, 7, 4, false},
		{"none left", func() { all = nil }, everything, 7, 0, false},
	}
	var before []byte
	for _, st := range steps {
		st.change()
		resp := &runtime.ListContainersResponse{}
		if err := e.Fill(resp, all, st.keep); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(resp.Containers) != 0 {
			t.Fatalf("%s: Fill set the field itself", st.name)
		}
		raw := resp.ProtoReflect().GetUnknown()
		if reused := len(raw) > 0 && len(before) > 0 && &raw[0] == &before[0]; reused != st.wantReused {
			t.Errorf("%s: the last list's bytes reused: %v, want %v", st.name, reused, st.wantReused)
		}
		before = raw
		if err := Decode(resp); err != nil {
			t.Fatalf("%s: decode: %v", st.name, err)
		}
		want := &runtime.ListContainersResponse{}
		for _, r := range all {
			if st.keep == nil || st.keep(r) {
				want.Containers = append(want.Containers, r.msg())
			}
		}
		if !proto.Equal(resp, want) {
			t.Errorf("%s: the client gets\n%v\nwant\n%v", st.name, resp, want)
		}
		if encoded != st.wantEncoded {
			t.Errorf("%s: %d encodings in all, want %d", st.name, encoded, st.wantEncoded)
		}
		if e.Len() != st.wantKept {
			t.Errorf("%s: %d entries kept, want %d", st.name, e.Len(), st.wantKept)
		}
	}
}

func (r *rec) status() *runtime.ContainerStatus {
	return &runtime.ContainerStatus{Id: r.id, Metadata: &runtime.ContainerMetadata{Name: "c", Attempt: 1},
		Image: &runtime.ImageSpec{Image: "busybox"}, State: r.state, Labels: map[string]string{"app": r.id}}
}

// A status filled from its kept entry is what a client would get built
// plainly, encoded once per record; and the entries of records gone stay
// bounded however many come and go, while those of the records there
// survive the pruning.
func TestFillOneKeepsOneEntryPerRecordAndDropsTheGone(t *testing.T) {
	live := recs(3)
	var all []*rec
	all = append(all, live...)
	encoded := 0
	e := NewOne(&runtime.ContainerStatusResponse{}, "status", func(r *rec) proto.Message { encoded++; return r.status() })
	check := func(step string, r *rec, wantEncoded int) {
		t.Helper()
		resp := &runtime.ContainerStatusResponse{}
		if err := e.FillOne(resp, r, func() []*rec { return all }); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if resp.Status != nil {
			t.Fatalf("%s: FillOne set the field itself", step)
		}
		if err := Decode(resp); err != nil {
			t.Fatalf("%s: decode: %v", step, err)
		}
		if want := (&runtime.ContainerStatusResponse{Status: r.status()}); !proto.Equal(resp, want) {
			t.Errorf("%s: the client gets\n%v\nwant\n%v", step, resp, want)
		}
		if wantEncoded >= 0 && encoded != wantEncoded {
			t.Errorf("%s: %d encodings in all, want %d", step, encoded, wantEncoded)
		}
	}
	check("the first status", live[0], 1)
	check("the same record again", live[0], 1)
	check("another record", live[1], 2)
	live[0] = &rec{id: live[0].id, state: runtime.ContainerState_CONTAINER_EXITED}
	all[0] = live[0]
	check("the record changed", live[0], 3)
	check("the third record", live[2], 4)

	// Containers come and go, each asked for once.
	for i := range 10 * pruneFloor {
		r := &rec{id: fmt.Sprintf("gone-%d", i), state: runtime.ContainerState_CONTAINER_RUNNING}
		all = append(live[:3:3], r)
		check("a passing container", r, -1)
		if e.Len() > 2*len(all)+pruneFloor {
			t.Fatalf("after %d passing containers, %d entries are kept for %d records", i+1, e.Len(), len(all))
		}
	}
	all = live
	before := encoded
	for _, r := range live {
		check("a record there all along", r, before)
	}
}

func TestNewRefusesWhatIsNotARepeatedMessageField(t *testing.T) {
	for _, field := range []string{"containers_", "Containers"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with field %q did not panic", field)
				}
			}()
			New(&runtime.ListContainersResponse{}, protoreflect.Name(field), (*rec).msgOf)
		}()
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("New with a field that is not repeated did not panic")
			}
		}()
		New(&runtime.ContainerStatusResponse{}, "status", (*rec).msgOf)
	}()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("NewOne with a repeated field did not panic")
			}
		}()
		NewOne(&runtime.ListContainersResponse{}, "containers", (*rec).msgOf)
	}()
	// Each kind is filled its own way: a list's Fill of a field that holds
	// one message would write it several times (a client merges them).
	one := NewOne(&runtime.ContainerStatusResponse{}, "status", (*rec).msgOf)
	if err := one.Fill(&runtime.ContainerStatusResponse{}, recs(2), func(*rec) bool { return true }); err == nil {
		t.Error("Fill of a field that holds one message did not fail")
	}
	list := New(&runtime.ListContainersResponse{}, "containers", (*rec).msgOf)
	if err := list.FillOne(&runtime.ListContainersResponse{}, recs(1)[0], func() []*rec { return nil }); err == nil {
		t.Error("FillOne of a repeated field did not fail")
	}
}

// ListContainers of 750 containers that did not change: built and
// marshalled plainly, against filled from the kept entries.
func BenchmarkList(b *testing.B) {
	all := recs(750)
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp := &runtime.ListContainersResponse{}
			for _, r := range all {
				resp.Containers = append(resp.Containers, r.msg())
			}
			if _, err := proto.Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		b.ReportAllocs()
		e := New(&runtime.ListContainersResponse{}, "containers", (*rec).msgOf)
		for b.Loop() {
			resp := &runtime.ListContainersResponse{}
			e.Fill(resp, all, nil)
			if _, err := proto.Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type listServer struct {
	runtime.UnimplementedRuntimeServiceServer
	e   *Entries[*rec]
	all []*rec
}

func (s *listServer) ListContainers(context.Context, *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	resp := &runtime.ListContainersResponse{}
	err := s.e.Fill(resp, s.all, nil)
	return resp, err
}

// ListContainers of 750 containers through gRPC on a unix socket, the
// client's decoding included, server and client in one process. The
// bench's density run measures the same floor across processes, with
// each runtime's own answers (test/bench/lifecycle/replay.go).
func BenchmarkListOverGRPC(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	runtime.RegisterRuntimeServiceServer(g, &listServer{e: New(&runtime.ListContainersResponse{}, "containers", (*rec).msgOf), all: recs(750)})
	go g.Serve(l)
	defer g.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := runtime.NewRuntimeServiceClient(conn)
	for b.Loop() {
		resp, err := c.ListContainers(b.Context(), &runtime.ListContainersRequest{})
		if err != nil || len(resp.Containers) != 750 {
			b.Fatalf("%d containers, %v", len(resp.GetContainers()), err)
		}
	}
}
