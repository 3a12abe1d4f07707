// Package errdefs is crid's one error vocabulary. Lower packages wrap these
// sentinels with what failed and on which object; the CRI server maps them
// to gRPC status codes once, at the edge, so the kubelet sees the code that
// tells it what to do (retry, give up, recreate).
package errdefs

import (
	"context"
	"errors"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrUnimplemented      = errors.New("not implemented")
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
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, ErrUnimplemented):
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

// kinds name the sentinels for a process boundary (a pod's monitor
// answering crid), where only text crosses.
var kinds = map[string]error{
	"NotFound": ErrNotFound, "AlreadyExists": ErrAlreadyExists, "InvalidArgument": ErrInvalidArgument,
	"FailedPrecondition": ErrFailedPrecondition, "Unavailable": ErrUnavailable, "Unimplemented": ErrUnimplemented,
}

// Kind names the sentinel err wraps, "" for none.
func Kind(err error) string {
	for name, sentinel := range kinds {
		if errors.Is(err, sentinel) {
			return name
		}
	}
	return ""
}

// WithKind is the error whose message is msg and whose kind is kind, as
// Kind named it on the other side of a boundary.
func WithKind(msg, kind string) error {
	if sentinel, ok := kinds[kind]; ok {
		return &kindError{msg: msg, kind: sentinel}
	}
	return errors.New(msg)
}

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
