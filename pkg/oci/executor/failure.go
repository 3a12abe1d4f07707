package executor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// The init tells its starter which of its failures are the spec's fault
// (a working dir, a mount target, a program that cannot be honoured) by
// this prefix on the sync socket; Start turns it into InvalidArgument.
const specErrorPrefix = "invalid-spec: "

// specError is a setup failure caused by what the spec asks for.
type specError struct{ error }

func (e specError) Unwrap() error { return e.error }

func badSpec(err error) error { return specError{err} }

// initFailure is what the init writes to its starter for err.
func initFailure(err error) []byte {
	var se specError
	if errors.As(err, &se) {
		return []byte(specErrorPrefix + err.Error())
	}
	return []byte(err.Error())
}

// initError turns what the init wrote into the error Start returns.
func initError(msg []byte) error {
	if rest, ok := strings.CutPrefix(string(msg), specErrorPrefix); ok {
		return fmt.Errorf("container init: %s: %w", rest, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("container init: %s", msg)
}
