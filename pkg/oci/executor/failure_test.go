package executor

import (
	"errors"
	"fmt"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestInitFailuresKeepWhetherTheSpecWasAtFault(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		invalid bool
	}{
		{"a working dir outside the root", badSpec(errors.New("working_dir /proc/self/fd/7: refused")), true},
		{"wrapped once more", fmt.Errorf("setup: %w", badSpec(errors.New("mount at /: refused"))), true},
		{"the host's fault", errors.New("pivot_root: EBUSY"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := initError(initFailure(tc.err))
			if got := errors.Is(err, errdefs.ErrInvalidArgument); got != tc.invalid {
				t.Fatalf("%v: InvalidArgument %v, want %v", err, got, tc.invalid)
			}
			if want := "container init: " + tc.err.Error(); err.Error() != want && err.Error() != want+": invalid argument" {
				t.Fatalf("message %q lost the init's %q", err, tc.err)
			}
		})
	}
}
