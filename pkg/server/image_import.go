package server

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// ImportMethod is crid's own call beside the CRI, on the same socket (so
// only root reaches it): `crid images import` asks the running crid to load
// an archive, as `ctr images import` asks containerd. The CRI has no such
// call, and the image store is the daemon's alone. The request is a Struct
// of "path" (an absolute path the daemon opens, on this host) and "name"
// (optional); the answer lists the images loaded, as ListImages would.
// Written by hand, with protobuf's own well-known messages, so no code
// generation is needed for one call.
const ImportMethod = "/crid.images.v1.Images/Import"

// importer is the service's handler type, which grpc checks the server
// implements.
type importer interface {
	importImages(ctx context.Context, req *structpb.Struct) (*runtime.ListImagesResponse, error)
}

var importService = grpc.ServiceDesc{
	ServiceName: "crid.images.v1.Images",
	HandlerType: (*importer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Import",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			req := new(structpb.Struct)
			if err := dec(req); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				return srv.(importer).importImages(ctx, req.(*structpb.Struct))
			}
			if interceptor == nil {
				return call(ctx, req)
			}
			return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: ImportMethod}, call)
		},
	}},
	Metadata: "crid/images/v1",
}

func (s *Server) importImages(ctx context.Context, req *structpb.Struct) (*runtime.ListImagesResponse, error) {
	path := req.GetFields()["path"].GetStringValue()
	if path == "" || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("path %q: the archive's absolute path on this host is needed: %w", path, errdefs.ErrInvalidArgument)
	}
	imgs, err := s.images.Import(ctx, path, req.GetFields()["name"].GetStringValue())
	if err != nil {
		return nil, err
	}
	out := &runtime.ListImagesResponse{}
	for _, img := range imgs {
		out.Images = append(out.Images, s.toCRIImage(img))
	}
	return out, nil
}
