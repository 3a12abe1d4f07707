package records

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
	"github.com/crid-dev/crid/pkg/store"
)

type thing struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Creating bool              `json:"creating,omitempty"`
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
	IPs      []string          `json:"ips,omitempty"`
}

func (t *thing) RecordID() string        { return t.ID }
func (t *thing) ReservedName() string    { return t.Name }
func (t *thing) InCreation() bool        { return t.Creating }
func (t *thing) CreationTime() time.Time { return t.Created }
func (t *thing) DeepCopy() *thing {
	c := *t
	if t.Labels != nil {
		c.Labels = make(map[string]string, len(t.Labels))
		for k, v := range t.Labels {
			c.Labels[k] = v
		}
	}
	c.IPs = append([]string(nil), t.IPs...)
	return &c
}

func openSet(t *testing.T, dir string) (*Set[thing, *thing], *store.Store) {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return New[thing](st, store.BucketSandboxes, "sandbox"), st
}

func reserve(t *testing.T, s *Set[thing, *thing], rec *thing) {
	t.Helper()
	unlock, err := s.Reserve(rec)
	if err != nil {
		t.Fatalf("reserve %s: %v", rec.ID, err)
	}
	unlock()
}

func TestNamesAreReservedUntilDelete(t *testing.T) {
	s, _ := openSet(t, t.TempDir())
	a := &thing{ID: "aaa1", Name: "pod-a", Created: time.Unix(1, 0)}
	reserve(t, s, a)
	_, err := s.Reserve(&thing{ID: "bbb2", Name: "pod-a"})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second reservation of a name: %v, want AlreadyExists", err)
	}
	for _, want := range []string{`"pod-a"`, "aaa1", "remove it first"} {
		if !contains(err.Error(), want) {
			t.Errorf("%q does not say %s", err, want)
		}
	}
	if _, err := s.Get("bbb2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the refused record is there: %v", err)
	}
	if err := s.Delete(a); err != nil {
		t.Fatal(err)
	}
	reserve(t, s, &thing{ID: "bbb2", Name: "pod-a"})
}

func TestLookupByIDAndUniquePrefix(t *testing.T) {
	s, _ := openSet(t, t.TempDir())
	reserve(t, s, &thing{ID: "abc123", Name: "a"})
	reserve(t, s, &thing{ID: "abd456", Name: "b"})
	reserve(t, s, &thing{ID: "abd", Name: "c"}) // an exact ID beats prefixes
	tests := []struct {
		id, want string
		err      error
	}{
		{"abc123", "abc123", nil},
		{"abc", "abc123", nil},
		{"abd", "abd", nil},
		{"abd4", "abd456", nil},
		{"ab", "", errdefs.ErrInvalidArgument},
		{"zz", "", errdefs.ErrNotFound},
		{"", "", errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		got, err := s.Get(tt.id)
		switch {
		case tt.err != nil && !errors.Is(err, tt.err):
			t.Errorf("Get(%q): %v, want %v", tt.id, err, tt.err)
		case tt.err == nil && (err != nil || got.ID != tt.want):
			t.Errorf("Get(%q) = %v, %v; want %s", tt.id, got, err, tt.want)
		}
	}
}

func TestRecordsBeingCreatedAreInvisible(t *testing.T) {
	s, _ := openSet(t, t.TempDir())
	half := &thing{ID: "half", Name: "h", Creating: true, Created: time.Unix(1, 0)}
	reserve(t, s, half)
	reserve(t, s, &thing{ID: "done", Name: "d", Created: time.Unix(2, 0)})
	if _, err := s.Visible("half"); !errors.Is(err, errdefs.ErrNotFound) || !contains(err.Error(), "still being created") {
		t.Errorf("Visible of a record being created: %v", err)
	}
	if _, err := s.Get("half"); err != nil {
		t.Errorf("Get of a record being created: %v", err)
	}
	if got := ids(s.ListVisible()); fmt.Sprint(got) != "[done]" {
		t.Errorf("ListVisible = %v", got)
	}
	if got := ids(s.List()); fmt.Sprint(got) != "[half done]" {
		t.Errorf("List = %v", got)
	}
	half.Creating = false
	if err := s.Put(half); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Visible("half"); err != nil {
		t.Errorf("Visible once made: %v", err)
	}
}

// Shared lists what ListVisible lists, in its order, without copies: a
// later Put replaces the record rather than changing what was listed.
func TestSharedListsTheRecordsAsHeld(t *testing.T) {
	s, _ := openSet(t, t.TempDir())
	reserve(t, s, &thing{ID: "half", Name: "h", Creating: true, Created: time.Unix(1, 0)})
	reserve(t, s, &thing{ID: "new", Name: "n", Created: time.Unix(3, 0), Labels: map[string]string{"a": "1"}})
	reserve(t, s, &thing{ID: "old", Name: "o", Created: time.Unix(2, 0)})
	listed := s.Shared()
	if got := ids(listed); fmt.Sprint(got) != fmt.Sprint(ids(s.ListVisible())) || fmt.Sprint(got) != "[old new]" {
		t.Fatalf("Shared = %v, ListVisible = %v", got, ids(s.ListVisible()))
	}
	if again := s.Shared(); again[1] != listed[1] {
		t.Error("Shared copied a record")
	}
	if err := s.Put(&thing{ID: "new", Name: "n", Created: time.Unix(3, 0), Labels: map[string]string{"a": "2"}}); err != nil {
		t.Fatal(err)
	}
	if listed[1].Labels["a"] != "1" {
		t.Errorf("a Put changed a listed record: %v", listed[1].Labels)
	}
	if got := s.Shared()[1].Labels["a"]; got != "2" {
		t.Errorf("the record after a Put: %q", got)
	}
}

// Shared answers with the slice it last made while nothing changed, and
// anew, as the records are, after every kind of change: the relist's
// bytes are reused when the list is the same one.
func TestSharedIsKeptUntilTheSetChanges(t *testing.T) {
	s, _ := openSet(t, t.TempDir())
	reserve(t, s, &thing{ID: "a", Name: "a", Created: time.Unix(1, 0)})
	reserve(t, s, &thing{ID: "b", Name: "b", Created: time.Unix(2, 0)})
	adopted := &thing{ID: "c", Name: "c", Created: time.Unix(3, 0)}
	steps := []struct {
		name   string
		change func() error
		want   string // ids listed
		kept   bool   // in the last list's slice
	}{
		{"the first list", func() error { return nil }, "[a b]", false},
		{"nothing changed", func() error { return nil }, "[a b]", true},
		{"a copy listed, then changed", func() error { s.ListVisible()[0].ID = "changed"; return nil }, "[a b]", true},
		{"a record being created", func() error {
			unlock, err := s.Reserve(&thing{ID: "d", Name: "d", Creating: true, Created: time.Unix(4, 0)})
			if err == nil {
				unlock()
			}
			return err
		}, "[a b]", false},
		{"it is made", func() error { return s.Put(&thing{ID: "d", Name: "d", Created: time.Unix(4, 0)}) }, "[a b d]", false},
		{"a record staged", func() error {
			s.Stage(&thing{ID: "a", Name: "a", Created: time.Unix(1, 0), IPs: []string{"x"}})
			return nil
		}, "[a b d]", false},
		{"a record deleted", func() error { return s.Delete(&thing{ID: "b", Name: "b"}) }, "[a d]", false},
		{"a record adopted", func() error { s.Adopt(adopted); return nil }, "[a c d]", false},
		{"nothing since", func() error { return nil }, "[a c d]", true},
	}
	var last []*thing
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := s.Shared()
		kept := last != nil && len(got) > 0 && &got[0] == &last[0]
		if kept != st.kept || fmt.Sprint(ids(got)) != st.want {
			t.Errorf("%s: Shared = %v, the last list's slice: %v; want %s, %v", st.name, ids(got), kept, st.want, st.kept)
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint(ids(s.ListVisible())) {
			t.Errorf("%s: Shared = %v, ListVisible = %v", st.name, ids(got), ids(s.ListVisible()))
		}
		if cap(got) != len(got) {
			t.Errorf("%s: Shared's slice has room (%d of %d): a caller's append would write into it", st.name, len(got), cap(got))
		}
		last = got
	}
	if got := s.Shared(); got[0].IPs == nil {
		t.Error("the staged record is not the one listed")
	}
}

func TestCallersGetDeepCopies(t *testing.T) {
	s, _ := openSet(t, t.TempDir())
	rec := &thing{ID: "x", Name: "x", Labels: map[string]string{"a": "1"}, IPs: []string{"10.0.0.1"}}
	reserve(t, s, rec)
	rec.Labels["a"], rec.IPs[0] = "changed after Reserve", "changed"
	got, _ := s.Get("x")
	got.Labels["a"], got.IPs[0] = "changed after Get", "changed"
	for _, l := range [][]*thing{s.List()} {
		l[0].Labels["a"] = "changed in a listing"
	}
	again, _ := s.Get("x")
	if again.Labels["a"] != "1" || again.IPs[0] != "10.0.0.1" {
		t.Errorf("the record changed through a copy: %+v", again)
	}
}

func TestLoadReturnsRecordsOldestFirstForStartUpToSettle(t *testing.T) {
	dir := t.TempDir()
	s, st := openSet(t, dir)
	reserve(t, s, &thing{ID: "new", Name: "n", Created: time.Unix(30, 0)})
	reserve(t, s, &thing{ID: "old", Name: "o", Created: time.Unix(10, 0)})
	reserve(t, s, &thing{ID: "crashed", Name: "c", Creating: true, Created: time.Unix(20, 0)})
	st.Close()

	s, _ = openSet(t, dir)
	loaded, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(loaded)); got != "[old crashed new]" {
		t.Fatalf("Load = %s", got)
	}
	if len(s.List()) != 0 {
		t.Fatal("Load adopted records itself")
	}
	for _, rec := range loaded {
		if rec.Creating {
			if err := s.Drop(rec.ID); err != nil {
				t.Fatal(err)
			}
			continue
		}
		s.Adopt(rec)
	}
	if got := fmt.Sprint(ids(s.List())); got != "[old new]" {
		t.Errorf("after settling: %s", got)
	}
	if _, err := s.Reserve(&thing{ID: "other", Name: "o"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("an adopted record's name was free: %v", err)
	}
	reserve(t, s, &thing{ID: "again", Name: "c"}) // the dropped record's name is free
}

func TestLockSerializesAndSurvivesDeleteWithWaiters(t *testing.T) {
	s, _ := openSet(t, t.TempDir())
	n := 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			unlock := s.Lock("a")
			defer unlock()
			v := n
			runtime.Gosched()
			n = v + 1
		})
	}
	wg.Wait()
	if n != 50 {
		t.Errorf("%d of 50 updates under one lock survived", n)
	}
	if len(s.locks) != 0 {
		t.Errorf("%d locks left after every holder left", len(s.locks))
	}

	// A removal under the lock while another caller waits for it: the
	// waiter and a newcomer must still exclude each other.
	rec := &thing{ID: "b", Name: "b"}
	unlock, _ := s.Reserve(rec)
	waiterIn := make(chan struct{})
	release := make(chan struct{})
	go func() {
		u := s.Lock("b")
		close(waiterIn)
		<-release
		u()
	}()
	for {
		s.mu.Lock()
		users := s.locks["b"].users
		s.mu.Unlock()
		if users == 2 {
			break
		}
		runtime.Gosched()
	}
	s.Delete(rec)
	unlock()
	<-waiterIn
	got := make(chan struct{})
	go func() { s.Lock("b")(); close(got) }()
	select {
	case <-got:
		t.Fatal("a newcomer took the lock the waiter holds")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-got
}

func ids(recs []*thing) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// BenchmarkSet is the record store under the kubelet's PLEG: a status
// (Get) and a list (ListVisible) of 750 records, and an update (Put,
// one bbolt transaction), each as one op.
func BenchmarkSet(b *testing.B) {
	st, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := New[thing](st, store.BucketSandboxes, "sandbox")
	for i := range 750 {
		rec := &thing{ID: fmt.Sprintf("%064d", i), Name: fmt.Sprintf("pod-%d", i), Created: time.Now(), Labels: map[string]string{"app": "web", "tier": "front"}}
		unlock, err := s.Reserve(rec)
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
	id := fmt.Sprintf("%064d", 374)
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ListVisible", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n := len(s.ListVisible()); n != 750 {
				b.Fatal(n)
			}
		}
	})
	b.Run("Put", func(b *testing.B) {
		rec, _ := s.Get(id)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Put(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
