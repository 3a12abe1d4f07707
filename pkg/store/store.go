// Package store persists crid's metadata in one bbolt database under the
// root dir. Every change is one transaction, so a crash leaves either the
// old record or the new one, never half of either.
//
// Records are JSON values in named buckets; the packages that own a kind of
// record (sandboxes, containers, images) define its type. The database
// carries a schema version: a crid refuses a database written by a newer
// schema rather than misread it.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// SchemaVersion is the layout of the database this crid reads and writes.
const SchemaVersion = 1

// DBFile is the database's file name under the root dir.
const DBFile = "crid.db"

// Buckets crid keeps records in.
const (
	BucketSandboxes  = "sandboxes"
	BucketContainers = "containers"
	BucketImages     = "images"
	BucketLayers     = "layers"
)

var (
	metaBucket = []byte("meta")
	schemaKey  = []byte("schema")
	buckets    = []string{BucketSandboxes, BucketContainers, BucketImages, BucketLayers}
)

// Store is the open metadata database and the lock that makes it this
// process's alone.
type Store struct {
	db   *bolt.DB
	lock *os.File
}

// Open locks dir for this process and opens (or creates) its database.
// A dir another process holds fails with *InUseError.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create root dir %s: %w", dir, err)
	}
	lock, err := LockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, DBFile)
	// We hold the directory lock, so bbolt's own flock is never contended;
	// the timeout only guards against a lock held outside crid's knowledge.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open metadata db %s: %w", path, err)
	}
	s := &Store{db: db, lock: lock}
	if err := s.init(); err != nil {
		s.Close()
		return nil, fmt.Errorf("metadata db %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if raw := meta.Get(schemaKey); raw != nil {
			v, err := strconv.Atoi(string(raw))
			if err != nil {
				return fmt.Errorf("schema version %q is not a number", raw)
			}
			if v > SchemaVersion {
				return fmt.Errorf("schema version %d is newer than this crid understands (%d): run the crid that wrote it, or a newer one", v, SchemaVersion)
			}
			// Older schemas migrate here when there are any.
		}
		if err := meta.Put(schemaKey, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
}

// Schema returns the schema version recorded in the database.
func (s *Store) Schema() (int, error) {
	var v int
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = strconv.Atoi(string(tx.Bucket(metaBucket).Get(schemaKey)))
		return err
	})
	return v, err
}

// Close closes the database and releases the lock.
func (s *Store) Close() error {
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// Tx is one write transaction: every Put and Delete in it lands together,
// or none does.
type Tx struct{ tx *bolt.Tx }

// Put stores v as the record key in bucket, replacing any record there.
func (t *Tx) Put(bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	b, err := bucketOf(t.tx, bucket)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// Delete removes the record key of bucket; removing a missing record is not
// an error, so a retried removal succeeds.
func (t *Tx) Delete(bucket, key string) error {
	b, err := bucketOf(t.tx, bucket)
	if err != nil {
		return err
	}
	return b.Delete([]byte(key))
}

// Update runs fn in one write transaction, committed when fn returns nil.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// Put stores v as the record key in bucket, replacing any record there.
func (s *Store) Put(bucket, key string, v any) error {
	return s.Update(func(tx *Tx) error { return tx.Put(bucket, key, v) })
}

// Get decodes the record key of bucket into v. A missing record is
// errdefs.ErrNotFound.
func (s *Store) Get(bucket, key string, v any) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b, err := bucketOf(tx, bucket)
		if err != nil {
			return err
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return fmt.Errorf("%s/%s: %w", bucket, key, errdefs.ErrNotFound)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
		}
		return nil
	})
}

// Delete removes the record key of bucket, if it is there.
func (s *Store) Delete(bucket, key string) error {
	return s.Update(func(tx *Tx) error { return tx.Delete(bucket, key) })
}

// ForEach calls fn with every record of bucket in key order. The raw bytes
// are valid only during the call.
func (s *Store) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b, err := bucketOf(tx, bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}

func bucketOf(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("no bucket %q in the metadata db: %w", name, errors.ErrUnsupported)
	}
	return b, nil
}
