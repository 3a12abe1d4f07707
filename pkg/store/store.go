// Package store persists crid's metadata in one append-only log under
// the root dir (crid.log). Every change is one transaction, written as one
// record and made durable by one fdatasync, so a crash leaves either the
// old record or the new one, never half of either; at open, a record a
// crash cut short ends the log (log.go has the layout).
//
// Records are JSON values in named buckets; the packages that own a kind of
// record (sandboxes, containers, images) define its type. The log carries
// a schema version: a crid refuses a log written by a newer schema rather
// than misread it. The index (where each record's value lies in the file)
// is in memory; values are read from the file when asked for, which is at
// start-up (ForEach): crid's managers keep their own records in memory.
//
// Why not bbolt, which held crid's records until 2026-12-03 (and which a
// store still reads once, to migrate a crid.db): a bbolt commit is two
// fdatasyncs, its pages and then its meta page, about 0.5-0.65 ms here
// against 0.2-0.3 ms for one record written over the log's zeroed tail and
// synced. A pod's start writes two records and a container's life about
// six, each on the call's path. The log is rewritten with only its live
// records once it has grown well past them (compact), in the background,
// with a rename: a crash in it leaves the old log whole.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// SchemaVersion is the layout of the records this crid reads and writes.
const SchemaVersion = 1

// LogFile is the log's file name under the root dir.
const LogFile = "crid.log"

// DBFile is the bbolt database of a crid before the log; Open migrates it
// and renames it DBFile+".migrated".
const DBFile = "crid.db"

// Buckets crid keeps records in.
const (
	BucketSandboxes  = "sandboxes"
	BucketContainers = "containers"
	BucketImages     = "images"
	BucketLayers     = "layers"
)

const (
	metaBucket = "meta"
	schemaKey  = "schema"
	// chunk is how far ahead of the records the file is zeroed: a full
	// sync every few dozen commits, and little of a small root's room.
	chunk = 64 << 10
	// compactAt is the least log worth compacting: below it a rewrite
	// saves nothing that matters.
	compactAt = 4 << 20
)

var buckets = []string{BucketSandboxes, BucketContainers, BucketImages, BucketLayers}

func knownBucket(b string) bool { return b == metaBucket || slices.Contains(buckets, b) }

// loc is where a record's value lies in the log.
type loc struct {
	off int64
	n   int
}

// index is where every live record lies, by bucket and key, and about how
// much room they would take in a compacted log.
type index struct {
	recs map[string]map[string]loc
	live int64
}

func newIndex() *index { return &index{recs: map[string]map[string]loc{}} }

// apply indexes o, a put's value being at offset at.
func (x *index) apply(o op, at int64) {
	b := x.recs[o.bucket]
	if b == nil {
		b = map[string]loc{}
		x.recs[o.bucket] = b
	}
	if old, ok := b[o.key]; ok {
		x.live -= entrySize(o.bucket, o.key, old.n)
	}
	if o.kind == opDelete {
		delete(b, o.key)
		return
	}
	b[o.key] = loc{off: at, n: len(o.value)}
	x.live += entrySize(o.bucket, o.key, len(o.value))
}

// entrySize is about what a record takes in a compacted log.
func entrySize(bucket, key string, n int) int64 { return int64(len(bucket) + len(key) + n + 8) }

// Store is the open metadata log and the lock that makes it this
// process's alone.
type Store struct {
	dir  string
	lock *os.File

	mu    sync.RWMutex
	f     *os.File
	end   int64 // where the next record goes
	size  int64 // the file's length: zero from end on
	index *index
	// compactFrom is the log's length that triggers a compaction.
	compactFrom int64
	// compacting says a compaction runs in the background (compact);
	// pending holds the ops committed since its snapshot, for it to
	// append to the new log before it takes its place.
	compacting  bool
	pending     []op
	compactions sync.WaitGroup
	// commits counts the records written, synced those on the disk: a
	// commit made with PutUnsynced is in the page cache alone until the
	// next fdatasync.
	commits, synced uint64
	// err is a failed sync: what the file holds is unknown from then on
	// (the kernel may have dropped the pages it could not write), so no
	// more is written.
	err error
}

// Open locks dir for this process and opens (or creates) its log,
// migrating a bbolt database there the first time.
// A dir another process holds fails with *InUseError.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create root dir %s: %w", dir, err)
	}
	lock, err := LockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, lock: lock}
	if err := s.open(); err != nil {
		s.Close()
		return nil, fmt.Errorf("metadata log %s: %w", s.path(), err)
	}
	return s, nil
}

func (s *Store) path() string { return filepath.Join(s.dir, LogFile) }

func (s *Store) open() error {
	// What a compaction or migration cut short left: the log is whole.
	os.Remove(s.path() + ".tmp")
	f, err := os.OpenFile(s.path(), os.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		recs, err := legacyRecords(filepath.Join(s.dir, DBFile))
		if err != nil {
			return err
		}
		if err := s.rewrite(func(yield func(op, error) bool) {
			for _, o := range recs {
				if !yield(o, nil) {
					return
				}
			}
		}); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if err := s.load(f); err != nil {
			f.Close()
			return err
		}
	}
	// A migrated database goes once the log holds its records (also when
	// a crash came between the two).
	if _, err := os.Stat(filepath.Join(s.dir, DBFile)); err == nil {
		if err := os.Rename(filepath.Join(s.dir, DBFile), filepath.Join(s.dir, DBFile+".migrated")); err != nil {
			return err
		}
	}
	if raw, ok := s.raw(metaBucket, schemaKey); ok {
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("schema version %q is not a number", raw)
		}
		if v > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this crid understands (%d): run the crid that wrote it, or a newer one", v, SchemaVersion)
		}
		// Older schemas migrate here when there are any.
		if v == SchemaVersion {
			return nil
		}
	}
	return s.commit([]op{{kind: opPut, bucket: metaBucket, key: schemaKey, value: []byte(strconv.Itoa(SchemaVersion))}}, true)
}

// load indexes the log f and writes to it at its end from then on. It
// reads the log mapped, not into the heap: only the index stays. The
// bytes a crash left past the last whole record are zeroed first, so no
// later record can be read together with them.
func (s *Store) load(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size < headerSize {
		return errors.New("not a crid log (shorter than its header)")
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map the log: %w", err)
	}
	idx := newIndex()
	end, torn, err := replay(data, idx.apply)
	unix.Munmap(data)
	if err != nil {
		return err
	}
	if torn {
		if _, err := f.WriteAt(make([]byte, size-end), end); err != nil {
			return fmt.Errorf("zero the torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("zero the torn tail: %w", err)
		}
	}
	s.f, s.index, s.end, s.size = f, idx, end, size
	s.compactFrom = max(compactAt, 4*idx.live)
	return nil
}

// rewrite writes a log holding recs alone beside the old one, syncs it
// and renames it over it: a crash at any point leaves one whole log.
// The store then writes to the new one. The caller holds mu (or is
// open).
func (s *Store) rewrite(recs iter.Seq2[op, error]) error {
	n, err := s.writeLog(recs)
	if err != nil {
		return err
	}
	return s.adopt(n)
}

// newLog is a log writeLog wrote beside the store's, not yet its own.
type newLog struct {
	f         *os.File
	idx       *index
	end, size int64
}

// writeLog writes recs to a new log beside the store's (LogFile+".tmp")
// and syncs it. recs are taken a chunk at a time, so it holds no more
// than that of them.
func (s *Store) writeLog(recs iter.Seq2[op, error]) (*newLog, error) {
	tmp := s.path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	n := &newLog{f: f, idx: newIndex(), end: headerSize}
	fail := func(err error) (*newLog, error) {
		n.discard(tmp)
		return nil, err
	}
	if _, err := f.WriteAt(logHeader(), 0); err != nil {
		return fail(err)
	}
	// Records of about a chunk: each is whole or the file is not adopted.
	var batch []op
	var batchSize int64
	for o, err := range recs {
		if err != nil {
			return fail(err)
		}
		batch = append(batch, o)
		if batchSize += entrySize(o.bucket, o.key, len(o.value)); batchSize >= chunk {
			from := n.end
			if err := n.append(batch); err != nil {
				return fail(err)
			}
			batch, batchSize = batch[:0], 0
			// Its writeback starts now, a chunk at a time: one sync of the
			// whole file at the end held the disk's queue for the commits
			// of the old log beside it.
			unix.SyncFileRange(int(f.Fd()), from, n.end-from, unix.SYNC_FILE_RANGE_WRITE)
		}
	}
	if err := n.append(batch); err != nil {
		return fail(err)
	}
	if err := n.pad(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return n, nil
}

// append writes ops as one record at the new log's end, zeroed room after
// it to the next chunk (unsynced).
func (n *newLog) append(ops []op) error {
	if len(ops) == 0 {
		return nil
	}
	rec, at := encodeRecord(ops)
	if _, err := n.f.WriteAt(rec, n.end); err != nil {
		return err
	}
	for i, o := range ops {
		n.idx.apply(o, n.end+int64(at[i]))
	}
	n.end += int64(len(rec))
	return n.pad()
}

// pad zeroes the new log from its records' end to the next chunk, where
// the file is not that long yet: a length of zero is where records end.
func (n *newLog) pad() error {
	size := (n.end/chunk + 1) * chunk
	if size <= n.size {
		return nil
	}
	from := max(n.size, n.end)
	if _, err := n.f.WriteAt(make([]byte, size-from), from); err != nil {
		return err
	}
	n.size = size
	return nil
}

func (n *newLog) discard(tmp string) {
	n.f.Close()
	os.Remove(tmp)
}

// adopt renames the new log over the store's and writes to it from then
// on. The caller holds mu (or is open).
func (s *Store) adopt(n *newLog) error {
	if err := os.Rename(n.f.Name(), s.path()); err != nil {
		n.discard(n.f.Name())
		return err
	}
	// From the rename on, the path is the new log: it is what the store
	// writes to, opened again by its name, which its errors then carry.
	n.f.Close()
	f, err := os.OpenFile(s.path(), os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		// The old file is no longer the log: nothing more may go to it.
		s.err = fmt.Errorf("reopen the metadata log after its rewrite: %w (restart crid)", err)
		return s.err
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.index, s.end, s.size = f, n.idx, n.end, n.size
	s.synced = s.commits // the new log was synced whole
	s.compactFrom = max(compactAt, 4*n.idx.live)
	// A rename not yet durable leaves the old log or the new one after a
	// power loss, and either holds the same records.
	return syncDir(s.dir)
}

// sync makes every commit written durable. The caller holds mu.
func (s *Store) sync() error {
	if s.synced == s.commits {
		return nil
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		s.err = fmt.Errorf("sync the metadata log: %w (what it holds is unknown: restart crid)", err)
		return s.err
	}
	s.synced = s.commits
	return nil
}

// Sync makes every commit so far durable: the ones PutUnsynced made, if
// no synced commit has since. It costs nothing when there are none.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return s.sync()
}

// Synced says whether every commit so far is on the disk.
func (s *Store) Synced() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.synced == s.commits
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// commit writes ops as one record, syncs it unless told not to, then
// indexes them. The caller holds mu.
func (s *Store) commit(ops []op, sync bool) error {
	if s.err != nil {
		return s.err
	}
	rec, at := encodeRecord(ops)
	if len(rec)-frameSize > maxRecord {
		return fmt.Errorf("a transaction of %d bytes is over the log's bound of %d", len(rec), maxRecord)
	}
	if need := s.end + int64(len(rec)); need > s.size {
		// Zeroed ahead and synced with the inode once per chunk; the
		// commits in between overwrite blocks the file has.
		size := (need/chunk + 1) * chunk
		if _, err := s.f.WriteAt(make([]byte, size-s.size), s.size); err != nil {
			return fmt.Errorf("grow the metadata log: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			s.err = fmt.Errorf("sync the metadata log: %w (what it holds is unknown: restart crid)", err)
			return s.err
		}
		s.size = size
	}
	// A failed write leaves end where it was: the next record goes over
	// whatever part of this one reached the file.
	if _, err := s.f.WriteAt(rec, s.end); err != nil {
		return fmt.Errorf("write the metadata log: %w", err)
	}
	s.commits++
	if sync {
		if err := s.sync(); err != nil {
			return err
		}
	}
	for i, o := range ops {
		s.index.apply(o, s.end+int64(at[i]))
	}
	s.end += int64(len(rec))
	if s.compacting {
		s.pending = append(s.pending, ops...)
	} else if s.end >= s.compactFrom {
		s.compact()
	}
	return nil
}

// compact rewrites the log with its live records only, in the
// background: in the commit that found the log grown, a rewrite of 3000
// records of 2.5 KB stalled every write for up to 78 ms. It takes a
// snapshot of the index; the live records are read from the old log (its
// bytes up to the snapshot never change) and written to the new one
// without the lock; then, under it, the ops committed since (pending) are
// appended and synced, and the new log is renamed over the old. A failure
// leaves the old log, which holds every commit, in use; the next try
// waits for it to double. The caller holds mu.
func (s *Store) compact() {
	snap := s.index.clone()
	old := s.f
	s.compacting, s.pending = true, nil
	s.compactions.Add(1)
	go func() {
		defer s.compactions.Done()
		recs := func(yield func(op, error) bool) {
			for _, b := range slices.Sorted(maps.Keys(snap.recs)) {
				for _, k := range slices.Sorted(maps.Keys(snap.recs[b])) {
					l := snap.recs[b][k]
					v := make([]byte, l.n)
					if _, err := old.ReadAt(v, l.off); err != nil {
						yield(op{}, fmt.Errorf("read %s/%s: %w", b, k, err))
						return
					}
					if !yield(op{kind: opPut, bucket: b, key: k, value: v}, nil) {
						return
					}
				}
			}
		}
		n, err := s.writeLog(recs)
		s.mu.Lock()
		defer s.mu.Unlock()
		pending := s.pending
		s.compacting, s.pending = false, nil
		if err == nil && s.err != nil {
			n.discard(n.f.Name())
			return
		}
		if err == nil {
			if err = n.append(pending); err == nil {
				err = n.f.Sync()
			}
			if err != nil {
				n.discard(n.f.Name())
			} else {
				err = s.adopt(n)
			}
		}
		if err != nil {
			s.compactFrom = 2 * s.end
		}
	}()
}

// clone is a copy of x that later applies to x do not change.
func (x *index) clone() *index {
	c := &index{recs: make(map[string]map[string]loc, len(x.recs)), live: x.live}
	for b, recs := range x.recs {
		c.recs[b] = maps.Clone(recs)
	}
	return c
}

// raw reads a record's value; the caller holds mu (or is open).
func (s *Store) raw(bucket, key string) ([]byte, bool) {
	l, ok := s.index.recs[bucket][key]
	if !ok {
		return nil, false
	}
	v := make([]byte, l.n)
	if _, err := s.f.ReadAt(v, l.off); err != nil {
		return nil, false
	}
	return v, true
}

// legacyRecords reads every record of a crid.db (bbolt) at path, for the
// log to hold; none when there is no such file.
func legacyRecords(path string) ([]op, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open the metadata db %s to migrate it: %w", path, err)
	}
	defer db.Close()
	var recs []op
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range append([]string{metaBucket}, buckets...) {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			if err := b.ForEach(func(k, v []byte) error {
				recs = append(recs, op{kind: opPut, bucket: name, key: string(k), value: slices.Clone(v)})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the metadata db %s to migrate it: %w", path, err)
	}
	return recs, nil
}

// Schema returns the schema version recorded in the log.
func (s *Store) Schema() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	raw, ok := s.raw(metaBucket, schemaKey)
	if !ok {
		return 0, fmt.Errorf("no schema version: %w", errdefs.ErrNotFound)
	}
	return strconv.Atoi(string(raw))
}

// Close syncs what PutUnsynced wrote, closes the log and releases the
// lock, once a compaction under way has ended.
func (s *Store) Close() error {
	s.compactions.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.f != nil {
		if s.err == nil {
			err = s.sync()
		}
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
		s.f = nil
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// Tx is one write transaction: every Put and Delete in it lands together,
// or none does.
type Tx struct {
	s   *Store
	ops []op
}

// Put stores v as the record key in bucket, replacing any record there.
func (t *Tx) Put(bucket, key string, v any) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	t.ops = append(t.ops, op{kind: opPut, bucket: bucket, key: key, value: raw})
	return nil
}

// Delete removes the record key of bucket; removing a missing record is not
// an error, so a retried removal succeeds (and writes nothing).
func (t *Tx) Delete(bucket, key string) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	t.ops = append(t.ops, op{kind: opDelete, bucket: bucket, key: key})
	return nil
}

func checkBucket(name string) error {
	if !knownBucket(name) {
		return fmt.Errorf("no bucket %q in the metadata log: %w", name, errors.ErrUnsupported)
	}
	return nil
}

// Update runs fn in one write transaction, committed when fn returns nil,
// and durable when Update returns.
func (s *Store) Update(fn func(*Tx) error) error { return s.update(fn, true) }

func (s *Store) update(fn func(*Tx) error, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &Tx{s: s}
	if err := fn(tx); err != nil {
		return err
	}
	// Deletes of records that are not there (nor put earlier in the
	// transaction) change nothing.
	var ops []op
	put := map[[2]string]bool{}
	for _, o := range tx.ops {
		id := [2]string{o.bucket, o.key}
		if _, ok := s.index.recs[o.bucket][o.key]; o.kind == opDelete && !ok && !put[id] {
			continue
		}
		put[id] = o.kind == opPut
		ops = append(ops, o)
	}
	if len(ops) == 0 {
		return nil
	}
	return s.commit(ops, sync)
}

// Put stores v as the record key in bucket, replacing any record there.
func (s *Store) Put(bucket, key string, v any) error {
	return s.Update(func(tx *Tx) error { return tx.Put(bucket, key, v) })
}

// PutUnsynced stores v as Put does but returns before the record is on
// the disk: a crash of crid keeps it (it is in the page cache), a power
// loss may take it and the unsynced commits after it, never one before.
// It is for records whose loss only a power loss can cause and the
// reboot after it makes moot (a pod's, whose namespaces, mounts and
// processes the reboot ends; see sandbox.Prepare). The next synced
// commit, or Sync, makes it durable with everything before it.
func (s *Store) PutUnsynced(bucket, key string, v any) error {
	return s.update(func(tx *Tx) error { return tx.Put(bucket, key, v) }, false)
}

// Get decodes the record key of bucket into v. A missing record is
// errdefs.ErrNotFound.
func (s *Store) Get(bucket, key string, v any) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	s.mu.RLock()
	raw, ok := s.raw(bucket, key)
	s.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%s/%s: %w", bucket, key, errdefs.ErrNotFound)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Delete removes the record key of bucket, if it is there.
func (s *Store) Delete(bucket, key string) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(bucket, key) })
}

// ForEach calls fn with every record of bucket in key order. The raw bytes
// are valid only during the call; fn must not write to the store.
func (s *Store) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	if err := checkBucket(bucket); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var buf []byte
	for _, k := range slices.Sorted(maps.Keys(s.index.recs[bucket])) {
		l := s.index.recs[bucket][k]
		if cap(buf) < l.n {
			buf = make([]byte, l.n)
		}
		buf = buf[:l.n]
		if _, err := s.f.ReadAt(buf, l.off); err != nil {
			return fmt.Errorf("read %s/%s: %w", bucket, k, err)
		}
		if err := fn(k, buf); err != nil {
			return err
		}
	}
	return nil
}
