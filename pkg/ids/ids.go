// Package ids makes and finds the IDs of sandboxes and containers: 64 hex
// digits, found by the whole ID or any unique prefix, as crictl users type
// them; and the per-ID locks that serialise changes of one object.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// New returns a random 64-digit hex ID.
func New() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Lookup finds the entry of m whose ID is id or starts with it; kind
// names what is looked up in errors.
func Lookup[T any](m map[string]T, id, kind string) (T, error) {
	var zero T
	if id == "" {
		return zero, fmt.Errorf("%s ID is empty: %w", kind, errdefs.ErrInvalidArgument)
	}
	if v, ok := m[id]; ok {
		return v, nil
	}
	var found T
	n := 0
	for key, v := range m {
		if strings.HasPrefix(key, id) {
			found = v
			n++
		}
	}
	switch n {
	case 0:
		return zero, fmt.Errorf("%s %q: %w", kind, id, errdefs.ErrNotFound)
	case 1:
		return found, nil
	}
	return zero, fmt.Errorf("%s ID prefix %q is ambiguous: %w", kind, id, errdefs.ErrInvalidArgument)
}

// Locks serialises changes of one object (a sandbox, a container) without
// holding up reads or changes of the others. The zero value is ready.
type Locks struct{ m sync.Map } // ID -> *sync.Mutex

// Lock waits for the object's lock and returns its unlock.
func (l *Locks) Lock(id string) func() {
	v, _ := l.m.LoadOrStore(id, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Forget drops the lock of an object that is gone, so the table does not
// grow with every object ever made.
func (l *Locks) Forget(id string) { l.m.Delete(id) }
