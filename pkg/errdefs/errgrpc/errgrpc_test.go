package errgrpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestToGRPCKeepsMessageAndMapsCode(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("container %q: %w", "abc", errdefs.ErrNotFound), codes.NotFound},
		{fmt.Errorf("name %q is reserved: %w", "n", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{fmt.Errorf("metadata.name: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("container is running: %w", errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{fmt.Errorf("store closed: %w", errdefs.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("checkpoint: %w", errdefs.ErrUnimplemented), codes.Unimplemented},
		{fmt.Errorf("pull: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("pull: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("unpack: %w", &os.PathError{Op: "write", Path: "/var/lib/crid/layers/x", Err: syscall.ENOSPC}), codes.ResourceExhausted},
		{fmt.Errorf("record: %w", syscall.EDQUOT), codes.ResourceExhausted},
		{fmt.Errorf("mkdir: %w", syscall.EROFS), codes.FailedPrecondition},
		{errors.New("disk on fire"), codes.Unknown},
		{status.Error(codes.ResourceExhausted, "already a status"), codes.ResourceExhausted},
	}
	for _, tt := range tests {
		got := status.Convert(ToGRPC(tt.err))
		if got.Code() != tt.code {
			t.Errorf("%v: code %v, want %v", tt.err, got.Code(), tt.code)
		}
		if got.Message() != tt.err.Error() && status.Convert(tt.err).Message() != got.Message() {
			t.Errorf("%v: message %q lost", tt.err, got.Message())
		}
	}
	if ToGRPC(nil) != nil {
		t.Error("ToGRPC(nil) is not nil")
	}
}
