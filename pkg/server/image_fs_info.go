package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsInfo reports the space and inodes used by image layers (the image
// filesystem) and by containers' writable layers (the container
// filesystem), as the kubelet's image GC and eviction read them.
func (s *Server) ImageFsInfo(ctx context.Context, req *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	images, err := s.fsUsage(ctx, s.layout.LayersDir())
	if err != nil {
		return nil, err
	}
	containers, err := s.fsUsage(ctx, s.layout.ContainersDir())
	if err != nil {
		return nil, err
	}
	return &runtime.ImageFsInfoResponse{
		ImageFilesystems:     []*runtime.FilesystemUsage{images},
		ContainerFilesystems: []*runtime.FilesystemUsage{containers},
	}, nil
}

func (s *Server) fsUsage(ctx context.Context, dir string) (*runtime.FilesystemUsage, error) {
	u, err := s.usage.Get(ctx, dir)
	if err != nil {
		return nil, err
	}
	return &runtime.FilesystemUsage{
		Timestamp:  u.At.UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: dir},
		UsedBytes:  &runtime.UInt64Value{Value: u.Bytes},
		InodesUsed: &runtime.UInt64Value{Value: u.Inodes},
	}, nil
}
