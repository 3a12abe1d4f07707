package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindSurvivesAProcessBoundary(t *testing.T) {
	for _, sentinel := range []error{ErrNotFound, ErrInvalidArgument, ErrFailedPrecondition, nil} {
		var err error = errors.New("plain")
		if sentinel != nil {
			err = fmt.Errorf("container init: working_dir refused: %w", sentinel)
		}
		back := WithKind(err.Error(), Kind(err))
		if back.Error() != err.Error() || Kind(back) != Kind(err) || (sentinel != nil && !errors.Is(back, sentinel)) {
			t.Errorf("%v came back as %v (kind %q, want %q)", err, back, Kind(back), Kind(err))
		}
	}
}
