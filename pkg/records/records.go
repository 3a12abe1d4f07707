// Package records keeps the node's records of one kind (pods, containers):
// in memory for lookups, written through to the store for crash recovery.
// It holds the rules both kinds share, once:
//
//   - a name (a pod attempt, a container attempt in its pod) is reserved by
//     one record at a time, from the record's first write to its removal;
//   - a record is found by its ID or by a prefix of it that is unique, as
//     crictl users type them;
//   - one change of an object runs at a time (Lock), and a removal never
//     lets a waiter and a newcomer hold two different locks of one ID;
//   - what callers get is a deep copy: changing it changes nothing until
//     it is Put back;
//   - a record being created is invisible to the CRI (Visible, ListVisible)
//     yet there for the manager that makes it and for start-up, which
//     undoes it: the kubelet never sees half a pod.
//
// containerd keeps the same machinery split over its registrar, truncindex
// and per-kind stores; here one generic Set serves both kinds.
package records

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/store"
)

// Record is what a Set holds: a pointer to a record type T.
type Record[T any] interface {
	*T
	// RecordID is the record's ID, its key in the store.
	RecordID() string
	// ReservedName is the name no two records may hold at once.
	ReservedName() string
	// InCreation says the object is still being made.
	InCreation() bool
	// CreationTime orders listings, oldest first.
	CreationTime() time.Time
	// DeepCopy shares nothing with the record it copies.
	DeepCopy() *T
}

// Set is the records of one kind.
type Set[T any, P Record[T]] struct {
	kind   string // "sandbox", "container": for errors
	bucket string
	store  *store.Store

	mu    sync.RWMutex
	byID  map[string]P
	names map[string]string // ReservedName -> ID
	locks map[string]*idLock
	// version counts the changes of byID. Shared's last answer is kept
	// with the version it was made at: the kubelet relists every second,
	// mostly with nothing changed, and sorting 750 records was 180 µs of
	// ListContainers' 300 in crid (BenchmarkList).
	version uint64 // guarded by mu
	shared  atomic.Pointer[sharedList[P]]
}

// sharedList is Shared's answer at a version of the Set.
type sharedList[P any] struct {
	version uint64
	recs    []P
}

// idLock serializes the changes of one object. It is counted, so that
// the last holder or waiter to leave drops it, not a removal that would
// leave a waiter on a lock a newcomer does not see.
type idLock struct {
	mu    sync.Mutex
	users int // holders and waiters; guarded by Set.mu
}

// New returns an empty set of kind's records kept in bucket.
func New[T any, P Record[T]](st *store.Store, bucket, kind string) *Set[T, P] {
	return &Set[T, P]{kind: kind, bucket: bucket, store: st, byID: map[string]P{}, names: map[string]string{}, locks: map[string]*idLock{}}
}

// Load reads every record of the bucket, oldest first, without adopting
// any: start-up decides, record by record, what to Adopt and what to Drop.
func (s *Set[T, P]) Load() ([]P, error) {
	var out []P
	err := s.store.ForEach(s.bucket, func(key string, raw []byte) error {
		rec := P(new(T))
		if err := json.Unmarshal(raw, rec); err != nil {
			return fmt.Errorf("decode %s %s: %w", s.kind, key, err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %ss: %w", s.kind, err)
	}
	sortByCreation(out)
	return out, nil
}

// Adopt indexes a loaded record as it is, without writing it: its name
// is taken whatever held it (two records of one name on disk is a crash
// between a removal and a create: the later wins).
func (s *Set[T, P]) Adopt(rec P) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[rec.RecordID()] = P(rec.DeepCopy())
	s.version++
	s.names[rec.ReservedName()] = rec.RecordID()
}

// Drop deletes a loaded record that was never adopted (or is no longer).
func (s *Set[T, P]) Drop(id string) error {
	if err := s.store.Delete(s.bucket, id); err != nil {
		return fmt.Errorf("delete the record of %s %s: %w", s.kind, id, err)
	}
	return nil
}

// Reserve takes rec's name and writes its first record. A name another
// record holds fails with AlreadyExists naming the holder; a failed write
// gives the name back. The caller holds no lock of rec's ID yet (the ID is
// new): Reserve returns with it held, for the caller to unlock.
func (s *Set[T, P]) Reserve(rec P) (unlock func(), err error) { return s.reserve(rec, s.Put) }

// ReserveUnsynced is Reserve with the first record written as
// PutUnsynced writes it.
func (s *Set[T, P]) ReserveUnsynced(rec P) (unlock func(), err error) {
	return s.reserve(rec, s.PutUnsynced)
}

func (s *Set[T, P]) reserve(rec P, put func(P) error) (unlock func(), err error) {
	id, name := rec.RecordID(), rec.ReservedName()
	s.mu.Lock()
	if other, ok := s.names[name]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s name %q is reserved for %s %s; remove it first: %w", s.kind, name, s.kind, other, errdefs.ErrAlreadyExists)
	}
	s.names[name] = id
	s.mu.Unlock()
	unlock = s.Lock(id)
	if err := put(rec); err != nil {
		s.mu.Lock()
		if s.names[name] == id {
			delete(s.names, name)
		}
		s.mu.Unlock()
		unlock()
		return nil, err
	}
	return unlock, nil
}

// Put writes rec through to the store, then to memory: a record in memory
// is one the store has (or had, for a failed removal's retry), but for a
// Stage whose Put is under way.
func (s *Set[T, P]) Put(rec P) error { return s.write(rec, s.store.Put) }

// PutUnsynced is Put with the record written but not yet on the disk
// (store.PutUnsynced says for which records that is enough).
func (s *Set[T, P]) PutUnsynced(rec P) error { return s.write(rec, s.store.PutUnsynced) }

func (s *Set[T, P]) write(rec P, put func(bucket, key string, v any) error) error {
	if err := put(s.bucket, rec.RecordID(), rec); err != nil {
		return fmt.Errorf("record %s %s: %w", s.kind, rec.RecordID(), err)
	}
	s.Stage(rec)
	return nil
}

// Sync makes every record written so far durable.
func (s *Set[T, P]) Sync() error {
	if err := s.store.Sync(); err != nil {
		return fmt.Errorf("sync the %s records: %w", s.kind, err)
	}
	return nil
}

// Stage puts rec in memory ahead of the store, for a Put its caller makes
// next under the same lock: until that Put, the store holds the older
// record, and a crash must be recoverable from it (a start, from the pod's
// monitor).
func (s *Set[T, P]) Stage(rec P) {
	s.mu.Lock()
	s.byID[rec.RecordID()] = P(rec.DeepCopy())
	s.version++
	s.mu.Unlock()
}

// Delete removes rec's record from the store and memory and frees its
// name. The caller holds rec's lock.
func (s *Set[T, P]) Delete(rec P) error {
	id := rec.RecordID()
	if err := s.store.Delete(s.bucket, id); err != nil {
		return fmt.Errorf("delete the record of %s %s: %w", s.kind, id, err)
	}
	s.mu.Lock()
	delete(s.byID, id)
	s.version++
	if s.names[rec.ReservedName()] == id {
		delete(s.names, rec.ReservedName())
	}
	s.mu.Unlock()
	return nil
}

// Lock takes the lock of one object's changes and returns its release.
func (s *Set[T, P]) Lock(id string) (unlock func()) {
	s.mu.Lock()
	l, ok := s.locks[id]
	if !ok {
		l = &idLock{}
		s.locks[id] = l
	}
	l.users++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.locks, id)
		}
		s.mu.Unlock()
	}
}

// Get finds a record by ID or unique ID prefix, whether or not it is still
// being created.
func (s *Set[T, P]) Get(id string) (P, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	return P(rec.DeepCopy()), nil
}

// Visible finds a record as the CRI may see it: one still being created
// (its NRI plugins, say, have not answered) does not exist yet.
func (s *Set[T, P]) Visible(id string) (P, error) {
	rec, err := s.Get(id)
	return visible(s.kind, rec, err)
}

// VisibleShared is Visible without the copy, for the status calls, as
// Shared is for the lists: the record is the Set's own, never changed in
// place, and the caller must not change it.
func (s *Set[T, P]) VisibleShared(id string) (P, error) {
	s.mu.RLock()
	rec, err := s.lookup(id)
	s.mu.RUnlock()
	return visible(s.kind, rec, err)
}

func visible[T any, P Record[T]](kind string, rec P, err error) (P, error) {
	if err == nil && rec.InCreation() {
		return nil, fmt.Errorf("%s %s is still being created: %w", kind, rec.RecordID(), errdefs.ErrNotFound)
	}
	return rec, err
}

// lookup is Get's search; the caller holds mu. An exact ID wins; a prefix
// must match one record alone.
func (s *Set[T, P]) lookup(id string) (P, error) {
	if id == "" {
		return nil, fmt.Errorf("%s ID is empty: %w", s.kind, errdefs.ErrInvalidArgument)
	}
	if rec, ok := s.byID[id]; ok {
		return rec, nil
	}
	var found P
	n := 0
	for key, rec := range s.byID {
		if strings.HasPrefix(key, id) {
			found = rec
			n++
		}
	}
	switch n {
	case 0:
		return nil, fmt.Errorf("%s %q: %w", s.kind, id, errdefs.ErrNotFound)
	case 1:
		return found, nil
	}
	return nil, fmt.Errorf("%s ID prefix %q is ambiguous: %w", s.kind, id, errdefs.ErrInvalidArgument)
}

// List returns a copy of every record, oldest first, those being created
// included.
func (s *Set[T, P]) List() []P { return s.Matching(func(P) bool { return true }) }

// Matching returns a copy of every record keep accepts, oldest first,
// those being created included. Only the matches are copied: one pod's
// containers, picked from a copy of all 750 (BenchmarkList), took 1.2 ms.
// keep runs under the read lock; it must not call into the Set.
func (s *Set[T, P]) Matching(keep func(P) bool) []P {
	var out []P
	s.mu.RLock()
	for _, rec := range s.byID {
		if keep(rec) {
			out = append(out, P(rec.DeepCopy()))
		}
	}
	s.mu.RUnlock()
	sortByCreation(out)
	return out
}

// ListVisible returns what the CRI may see, oldest first: Shared's
// records, copied.
func (s *Set[T, P]) ListVisible() []P {
	shared := s.Shared()
	out := make([]P, len(shared))
	for i, rec := range shared {
		out[i] = P(rec.DeepCopy())
	}
	return out
}

// Shared returns the records the CRI may see, oldest first, as the Set
// holds them, for the list calls: a copy of each (a container's copy
// holds its whole stored request) made ListContainers of 750 containers
// copy megabytes. A record the Set holds is never changed in place (Put
// and Stage store a copy), so what Shared returns stays as it was; the
// caller must not change it, nor the slice: until the Set changes, every
// call returns the same one.
func (s *Set[T, P]) Shared() []P {
	s.mu.RLock()
	v := s.version
	if l := s.shared.Load(); l != nil && l.version == v {
		s.mu.RUnlock()
		return l.recs
	}
	out := make([]P, 0, len(s.byID))
	for _, rec := range s.byID {
		if !rec.InCreation() {
			out = append(out, rec)
		}
	}
	s.mu.RUnlock()
	sortByCreation(out)
	// Capped at its length: a caller's append copies. Two calls racing
	// here may leave the older version kept; the next call rebuilds it.
	out = out[:len(out):len(out)]
	s.shared.Store(&sharedList[P]{version: v, recs: out})
	return out
}

// Each calls f with every record (not a copy) under the read lock, for
// scans that need no copy; f must not change them or call into the Set.
func (s *Set[T, P]) Each(f func(P)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, rec := range s.byID {
		f(rec)
	}
}

func sortByCreation[T any, P Record[T]](recs []P) {
	slices.SortStableFunc(recs, func(a, b P) int {
		if c := a.CreationTime().Compare(b.CreationTime()); c != 0 {
			return c
		}
		return strings.Compare(a.RecordID(), b.RecordID())
	})
}
