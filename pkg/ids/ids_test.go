package ids

import (
	"errors"
	"runtime"
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

func TestLocks(t *testing.T) {
	var l Locks
	// One object's changes are serialised: a read-yield-write under the
	// lock loses no update.
	n, done := 0, make(chan struct{})
	for range 50 {
		go func() {
			defer func() { done <- struct{}{} }()
			unlock := l.Lock("a")
			defer unlock()
			v := n
			runtime.Gosched()
			n = v + 1
		}()
	}
	for range 50 {
		<-done
	}
	if n != 50 {
		t.Errorf("%d of 50 updates under one lock survived", n)
	}
	// Another object's lock is free while one is held, and a forgotten
	// lock is made anew.
	unlockA := l.Lock("a")
	l.Lock("b")()
	unlockA()
	l.Forget("a")
	l.Lock("a")()
}
