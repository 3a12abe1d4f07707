// Package errdefs is crid's one error vocabulary. Lower packages wrap these
// sentinels with what failed and on which object; the CRI server maps them
// to gRPC status codes once, at the edge (package errgrpc), so the kubelet
// sees the code that tells it what to do (retry, give up, recreate). This
// package links no gRPC: the processes started beside each pod use it.
package errdefs

import "errors"

var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrUnimplemented      = errors.New("not implemented")
)

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
