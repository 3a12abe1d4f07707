package ids

import (
	"errors"
	"testing"

	"github.com/crid-dev/crid/pkg/errdefs"
)

func TestLookup(t *testing.T) {
	m := map[string]int{"abc123": 1, "abd456": 2}
	tests := []struct {
		id   string
		want int
		err  error
	}{
		{"abc123", 1, nil}, {"abd", 2, nil}, {"ab", 0, errdefs.ErrInvalidArgument},
		{"zz", 0, errdefs.ErrNotFound}, {"", 0, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		got, err := Lookup(m, tt.id, "thing")
		if got != tt.want || !errors.Is(err, tt.err) && (tt.err != nil || err != nil) {
			t.Errorf("Lookup(%q) = %d, %v; want %d, %v", tt.id, got, err, tt.want, tt.err)
		}
	}
	if a, b := New(), New(); len(a) != 64 || a == b {
		t.Errorf("New: %q %q", a, b)
	}
}
