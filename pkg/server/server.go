// Package server is crid's CRI surface: the RuntimeService and ImageService
// handlers, one file per RPC, each reading top to bottom as validate, do,
// answer. The work itself lives in the packages below (sandbox, oci,
// image, cni, cgroups); a handler asks, they know how.
package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/crid-dev/crid/pkg/cgroups"
	"github.com/crid-dev/crid/pkg/config"
	"github.com/crid-dev/crid/pkg/container"
	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/errdefs/errgrpc"
	"github.com/crid-dev/crid/pkg/events"
	"github.com/crid-dev/crid/pkg/image"
	"github.com/crid-dev/crid/pkg/logctx"
	"github.com/crid-dev/crid/pkg/metrics"
	"github.com/crid-dev/crid/pkg/nri"
	"github.com/crid-dev/crid/pkg/sandbox"
	"github.com/crid-dev/crid/pkg/store"
	"github.com/crid-dev/crid/pkg/version"
	"github.com/crid-dev/crid/pkg/wirelist"
)

// Server answers CRI v1 calls. RPCs whose capability has not landed fall
// through to the embedded Unimplemented servers, whose answers the
// interceptor rewrites to say so plainly.
type Server struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	cfg        config.Config
	store      *store.Store
	cgroups    *cgroups.Hierarchy
	layout     image.Layout
	usage      *image.UsageCache
	images     *image.Service
	sandboxes  *sandbox.Manager
	containers *container.Manager
	streaming  streaming.Server
	events     *events.Broker
	nri        *nri.Host // may be nil: no NRI
	metrics    *metrics.Metrics

	// The list calls' entries and the statuses, kept encoded (wirelist).
	listedContainers *wirelist.Entries[*container.Container]
	listedSandboxes  *wirelist.Entries[*sandbox.Sandbox]
	keptStatuses     *wirelist.Entries[*container.Container] // ContainerStatus's

	mu      sync.Mutex
	podCIDR string // from UpdateRuntimeConfig; handed to CNI as a runtime config
}

// usageMaxAge is how stale a filesystem usage answer may be.
const usageMaxAge = 5 * time.Second

// New returns a server over an open store and image service.
func New(cfg config.Config, st *store.Store, cg *cgroups.Hierarchy, images *image.Service, sandboxes *sandbox.Manager, containers *container.Manager, broker *events.Broker, host *nri.Host, m *metrics.Metrics) *Server {
	return &Server{
		cfg: cfg, store: st, cgroups: cg, images: images, sandboxes: sandboxes, containers: containers, events: broker, nri: host, metrics: m,
		layout:           image.Layout{Root: cfg.Root},
		usage:            image.NewUsageCache(usageMaxAge),
		listedContainers: wirelist.New(&runtime.ListContainersResponse{}, "containers", listedContainer),
		listedSandboxes:  wirelist.New(&runtime.ListPodSandboxResponse{}, "items", listedSandbox),
		keptStatuses:     wirelist.NewOne(&runtime.ContainerStatusResponse{}, "status", func(c *container.Container) proto.Message { return containerStatus(c) }),
	}
}

// Register adds both CRI services to g, and crid's own import call.
func (s *Server) Register(g *grpc.Server) {
	runtime.RegisterRuntimeServiceServer(g, s)
	runtime.RegisterImageServiceServer(g, s)
	g.RegisterService(&importService, s)
}

// ServerOptions returns the gRPC options every crid server runs with: the
// interceptors that log, recover and map errors, and message limits as
// large as the kubelet's (16 MiB), so ListContainers of a full node fits.
// Each call is counted and timed in m (which may be nil).
func ServerOptions(m *metrics.Metrics) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(config.MaxMessageSize),
		grpc.MaxSendMsgSize(config.MaxMessageSize),
		grpc.ChainUnaryInterceptor(measured(m), unaryInterceptor),
		grpc.ChainStreamInterceptor(streamInterceptor),
	}
}

// measured counts and times each unary call by method and the code it
// answered with (the inner interceptor has mapped errors to codes).
func measured(m *metrics.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.RPC(info.FullMethod, status.Code(err).String(), time.Since(start))
		return resp, err
	}
}

// unaryInterceptor is the edge every unary call passes: a panic becomes an
// Internal error instead of killing the daemon (and with it nothing, since
// containers outlive it, but every in-flight call), errors get their gRPC
// codes, and calls are logged at debug (4) and with payloads at trace (6).
func unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx = withRequestIDs(ctx, req)
	// What the handler learns (the ID of the pod or container it made)
	// goes on the call's own line too.
	hctx, learned := logctx.Track(ctx)
	defer func() {
		lctx := logctx.With(ctx, learned()...)
		if r := recover(); r != nil {
			logctx.From(lctx).Error(nil, "Panic in CRI call", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "crid: %s panicked: %v (a bug: please report it with the daemon log)", info.FullMethod, r)
		}
		err = edgeError(info.FullMethod, err)
		logCall(lctx, info.FullMethod, req, resp, err, time.Since(start))
	}()
	return handler(hctx, req)
}

// withRequestIDs gives ctx a logger naming the pod and container the
// request names, so a failure (and every line logged on its behalf) says
// which.
func withRequestIDs(ctx context.Context, req any) context.Context {
	var pod, ctr string
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok {
		pod = r.GetPodSandboxId()
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok {
		ctr = r.GetContainerId()
	}
	return logctx.With(ctx, "pod", pod, "container", ctr)
}

func streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			logctx.From(ss.Context()).Error(nil, "Panic in CRI stream", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "crid: %s panicked: %v", info.FullMethod, r)
		}
		err = edgeError(info.FullMethod, err)
		logCall(ss.Context(), info.FullMethod, nil, nil, err, time.Since(start))
	}()
	return handler(srv, ss)
}

// edgeError maps err to its gRPC code, and says in full which capability is
// missing when a handler is not there yet: the generated "method X not
// implemented" does not tell an operator that the runtime, not their
// request, is at fault.
func edgeError(method string, err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unimplemented {
		return status.Errorf(codes.Unimplemented, "crid %s does not implement %s yet", version.Version, method)
	}
	return errgrpc.ToGRPC(err)
}

func logCall(ctx context.Context, method string, req, resp any, err error, took time.Duration) {
	log := logctx.From(ctx)
	switch {
	case err != nil && status.Code(err) != codes.NotFound && status.Code(err) != codes.Unimplemented:
		log.Info("CRI call failed", "method", method, "code", status.Code(err), "error", err, "took", took)
	case log.V(6).Enabled():
		if m, ok := resp.(proto.Message); ok && len(m.ProtoReflect().GetUnknown()) > 0 {
			// A list's entries, kept encoded (wirelist): as the client reads them.
			m = proto.Clone(m)
			wirelist.Decode(m)
			resp = m
		}
		log.Info("CRI call", "method", method, "request", req, "response", resp, "error", err, "took", took)
	case log.V(4).Enabled():
		log.Info("CRI call", "method", method, "code", status.Code(err), "took", took)
	}
}

// invalid builds the InvalidArgument error a bad field gets: the field's
// name and what to do about it.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}
