// Package errgrpc maps crid's errors (package errdefs) to gRPC status
// codes, at the CRI server's edge. It is apart from errdefs so that what
// runs beside each pod (crid-monitor) links no gRPC: its initialisation
// and pages are paid at every container start.
package errgrpc

import (
	"context"
	"errors"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// Code returns the gRPC code for err. An error that already carries a gRPC
// status keeps it; an unclassified error is Unknown.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, errdefs.ErrUnimplemented):
		return codes.Unimplemented
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// A full disk is the operator's to fix; the call may succeed
		// once there is room (a kubelet's image GC makes some).
		return codes.ResourceExhausted
	case errors.Is(err, syscall.EROFS):
		return codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Unknown
}

// ToGRPC turns err into a gRPC status error with the code Code gives and
// err's whole message.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}
