package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// TestMigratesABboltDB: a root with a crid.db of a crid before the log
// opens with its records, and the database is set aside, once.
func TestMigratesABboltDB(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucketIfNotExists([]byte(metaBucket))
		meta.Put([]byte(schemaKey), []byte("1"))
		for _, b := range buckets {
			tx.CreateBucketIfNotExists([]byte(b))
		}
		tx.Bucket([]byte(BucketContainers)).Put([]byte("c1"), []byte(`{"Name":"one"}`))
		return tx.Bucket([]byte(BucketImages)).Put([]byte("i1"), []byte(`{"Name":"img"}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Name string }
		if err := s.Get(BucketContainers, "c1", &got); err != nil || got.Name != "one" {
			t.Errorf("round %d: container c1 = %+v, %v", round, got, err)
		}
		if err := s.Get(BucketImages, "i1", &got); err != nil || got.Name != "img" {
			t.Errorf("round %d: image i1 = %+v, %v", round, got, err)
		}
		if v, err := s.Schema(); err != nil || v != SchemaVersion {
			t.Errorf("round %d: schema %d, %v", round, v, err)
		}
		if round == 0 {
			s.Put(BucketContainers, "c2", struct{ Name string }{"two"})
		} else if err := s.Get(BucketContainers, "c2", &got); err != nil || got.Name != "two" {
			t.Errorf("a record written after the migration: %+v, %v", got, err)
		}
		s.Close()
		if _, err := os.Stat(filepath.Join(dir, DBFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("round %d: crid.db is still there (%v)", round, err)
		}
		if _, err := os.Stat(filepath.Join(dir, DBFile+".migrated")); err != nil {
			t.Errorf("round %d: crid.db was not set aside: %v", round, err)
		}
	}
}

// TestTornTailEndsTheLog: a crash that cut the last record short, at any
// byte and whatever it left there (zeros, or old bytes), leaves the
// records before it; the next record goes where it was, and all of it
// survives a reopen.
func TestTornTailEndsTheLog(t *testing.T) {
	base := t.TempDir()
	s, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(BucketSandboxes, "a", "first")
	from := s.end
	s.Put(BucketSandboxes, "b", "second")
	to := s.end
	s.Close()
	whole, err := os.ReadFile(filepath.Join(base, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, fill := range []byte{0, 0xa5} {
		for cut := from; cut < to; cut++ {
			t.Run(fmt.Sprintf("fill-%x-cut-%d", fill, cut-from), func(t *testing.T) {
				dir := t.TempDir()
				torn := bytes.Clone(whole)
				for i := cut; i < to; i++ {
					torn[i] = fill
				}
				if err := os.WriteFile(filepath.Join(dir, LogFile), torn, 0o600); err != nil {
					t.Fatal(err)
				}
				s, err := Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				var v string
				if err := s.Get(BucketSandboxes, "a", &v); err != nil || v != "first" {
					t.Fatalf("a = %q, %v", v, err)
				}
				if err := s.Get(BucketSandboxes, "b", &v); !errors.Is(err, errdefs.ErrNotFound) {
					t.Fatalf("the torn record b reads as %q, %v", v, err)
				}
				if err := s.Put(BucketSandboxes, "c", "third"); err != nil {
					t.Fatal(err)
				}
				s.Close()
				if s, err = Open(dir); err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				var keys []string
				s.ForEach(BucketSandboxes, func(k string, _ []byte) error { keys = append(keys, k); return nil })
				if strings.Join(keys, ",") != "a,c" {
					t.Fatalf("after the torn record and one more: %v, want a,c", keys)
				}
			})
		}
	}
}

// TestCompactionKeepsTheLiveRecords: a log rewritten once its dead
// records pile up holds the live ones, smaller, across a reopen.
func TestCompactionKeepsTheLiveRecords(t *testing.T) {
	dir := t.TempDir()
	fds := openFDs(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 100<<10)
	for i := 0; i < 100; i++ {
		if err := s.Put(BucketContainers, fmt.Sprintf("c%d", i%3), fmt.Sprintf("%d %s", i, big)); err != nil {
			t.Fatal(err)
		}
	}
	s.Put(BucketContainers, "gone", "soon")
	s.Delete(BucketContainers, "gone")
	s.Close()
	if n := openFDs(t); n != fds {
		t.Errorf("%d descriptors open after the store closed, %d before it opened: compaction leaks", n, fds)
	}
	fi, err := os.Stat(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	// 100 puts of 100 KiB: 10 MiB written, 300 KiB live.
	if fi.Size() > compactAt {
		t.Errorf("the log is %d bytes: not compacted", fi.Size())
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, want := range []int{99, 97, 98} {
		var v string
		if err := s.Get(BucketContainers, fmt.Sprintf("c%d", i), &v); err != nil || !strings.HasPrefix(v, fmt.Sprintf("%d x", want)) {
			t.Errorf("c%d: %.10q, %v; want the put of round %d", i, v, err, want)
		}
	}
	if err := s.Get(BucketContainers, "gone", new(string)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a deleted record is back: %v", err)
	}
}

// TestCorruptRecordIsRefused: a record whose CRC holds but whose ops do
// not decode is damage, not a torn tail: the log is refused, not cut.
func TestCorruptRecordIsRefused(t *testing.T) {
	dir := t.TempDir()
	log := logHeader()
	payload := []byte{9, 1, 'x', 1, 'y'} // op 9 does not exist
	frame := make([]byte, frameSize)
	binary.LittleEndian.PutUint32(frame, uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:], crc32Of(payload))
	log = append(append(log, frame...), payload...)
	os.WriteFile(filepath.Join(dir, LogFile), log, 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "corrupt record") {
		t.Fatalf("open of a corrupt log: %v", err)
	}
}

// FuzzReplay: whatever the file holds, replay neither panics nor reads
// past it, and what it indexes lies inside it.
func FuzzReplay(f *testing.F) {
	rec, _ := encodeRecord([]op{{kind: opPut, bucket: "b", key: "k", value: []byte("v")}, {kind: opDelete, bucket: "b", key: "j"}})
	f.Add(append(logHeader(), rec...))
	f.Add(logHeader())
	f.Add(append(logHeader(), rec[:len(rec)-1]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		replay(data, func(o op, at int64) {
			if o.kind == opPut && (at < 0 || at+int64(len(o.value)) > int64(len(data))) {
				t.Fatalf("value at %d+%d is outside the %d bytes", at, len(o.value), len(data))
			}
		})
	})
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCommitsDuringCompactionLand: compaction runs beside the writes;
// whatever is put and deleted while it copies the live records is in the
// new log too, across compactions and a reopen (run with -race).
func TestCommitsDuringCompactionLand(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const writers, keys, rounds = 4, 40, 400
	val := func(w, k, r int) string { return fmt.Sprintf("w%d k%d r%d %s", w, k, r, strings.Repeat("v", 8<<10)) }
	want := make([]map[string]string, writers) // each writer's keys, disjoint
	errs := make(chan error, writers)
	for w := range writers {
		want[w] = map[string]string{}
		go func() {
			for r := range rounds {
				k := fmt.Sprintf("w%d-%d", w, (r*7)%keys)
				if r%5 == 4 {
					if err := s.Delete(BucketContainers, k); err != nil {
						errs <- err
						return
					}
					delete(want[w], k)
					continue
				}
				v := val(w, (r*7)%keys, r)
				if err := s.Put(BucketContainers, k, v); err != nil {
					errs <- err
					return
				}
				want[w][k] = v
				// What was just written reads back, compaction or not.
				var got string
				if err := s.Get(BucketContainers, k, &got); err != nil || got != v {
					errs <- fmt.Errorf("%s read back %.20q, %v", k, got, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	written := int64(writers * rounds * 8 << 10)
	s.Close()
	fi, err := os.Stat(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= written/2 {
		t.Errorf("the log is %d bytes after %d written: never compacted", fi.Size(), written)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	s.ForEach(BucketContainers, func(key string, _ []byte) error { n++; return nil })
	total := 0
	for w := range writers {
		total += len(want[w])
		for k, v := range want[w] {
			var got string
			if err := s.Get(BucketContainers, k, &got); err != nil || got != v {
				t.Errorf("%s after the reopen: %.20q, %v; want %.20q", k, got, err, v)
			}
		}
	}
	if n != total {
		t.Errorf("%d records after the reopen, want %d (a deleted one is back, or one is lost)", n, total)
	}
}
