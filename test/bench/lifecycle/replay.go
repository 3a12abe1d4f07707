package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The relist's floor: a runtime's answers to the relist's calls, served
// byte for byte by a process of the bench's own that does nothing else
// (no records, no logging, no marshalling: the bytes go out as they
// came), and timed by the same client in the same way. What a runtime's
// figure has above it is the runtime's; what it does not, the
// transport's and the client's decoding, which no runtime can shorten.

// replayEnv names the directory a replaying child serves from.
const replayEnv = "LIFECYCLE_REPLAY_DIR"

// replayAnswers are the files of a replay's directory.
var replayAnswers = []string{"ListContainers", "ListPodSandbox", "ContainerStatus"}

// replayServer answers with the kept bytes, as unknown fields: protobuf
// writes them out as they are, and on the wire they are the fields.
type replayServer struct {
	runtime.UnimplementedRuntimeServiceServer
	answers map[string][]byte
}

func (s *replayServer) answer(rpc string, resp proto.Message) proto.Message {
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(s.answers[rpc]))
	return resp
}

func (s *replayServer) ListContainers(context.Context, *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	return s.answer("ListContainers", &runtime.ListContainersResponse{}).(*runtime.ListContainersResponse), nil
}

func (s *replayServer) ListPodSandbox(context.Context, *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	return s.answer("ListPodSandbox", &runtime.ListPodSandboxResponse{}).(*runtime.ListPodSandboxResponse), nil
}

func (s *replayServer) ContainerStatus(context.Context, *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	return s.answer("ContainerStatus", &runtime.ContainerStatusResponse{}).(*runtime.ContainerStatusResponse), nil
}

// serveReplay is the child's main: it serves dir's answers on
// dir/replay.sock until it is killed.
func serveReplay(dir string) error {
	s := &replayServer{answers: map[string][]byte{}}
	for _, rpc := range replayAnswers {
		b, err := os.ReadFile(filepath.Join(dir, rpc))
		if err != nil {
			return err
		}
		s.answers[rpc] = b
	}
	l, err := net.Listen("unix", filepath.Join(dir, "replay.sock"))
	if err != nil {
		return err
	}
	g := grpc.NewServer(grpc.MaxSendMsgSize(16 << 20))
	runtime.RegisterRuntimeServiceServer(g, s)
	return g.Serve(l)
}

// replay keeps t's answers to the relist's calls, serves them from a
// child process and times the relist against it, n rounds, into d.Replay.
func (t *target) replay(ctx context.Context, d *Density, n int) (err error) {
	list, err := t.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		return err
	}
	if len(list.Containers) == 0 {
		return errors.New("replay: no containers to list")
	}
	pods, err := t.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	status, err := t.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: list.Containers[0].Id})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lifecycle-replay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for rpc, m := range map[string]proto.Message{"ListContainers": list, "ListPodSandbox": pods, "ContainerStatus": status} {
		b, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, rpc), b, 0o600); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self)
	child.Env = append(os.Environ(), replayEnv+"="+dir)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		return err
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	sock := filepath.Join(dir, "replay.sock")
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			return fmt.Errorf("replay: %s did not appear", sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	bare := &target{Name: t.Name + " replayed", rt: runtime.NewRuntimeServiceClient(conn)}
	rd := &Density{Relist: map[string]Stats{}}
	if err := bare.relist(ctx, rd, n); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	d.Replay = rd.Relist
	return nil
}
