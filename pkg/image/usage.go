package image

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Usage is what a directory tree costs its filesystem.
type Usage struct {
	Bytes  uint64 // allocated, not apparent, size: what df sees
	Inodes uint64
	At     time.Time
}

// DirUsage walks dir and adds up its inodes and their allocated blocks,
// each hard-linked inode once. A missing dir uses nothing; files that
// vanish during the walk are passed over, since containers write while it
// runs.
func DirUsage(ctx context.Context, dir string) (Usage, error) {
	u := Usage{At: time.Now()}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		key := inode{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		u.Inodes++
		u.Bytes += uint64(st.Blocks) * 512
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return u, err
}

// UsageCache answers DirUsage for a set of dirs from a recent walk. The
// kubelet asks for filesystem usage every few seconds; walking every layer
// each time would cost more than the answer is worth, and eviction works on
// a scale of minutes.
type UsageCache struct {
	maxAge time.Duration

	mu    sync.Mutex
	cache map[string]Usage
}

// NewUsageCache returns a cache whose answers are at most maxAge old.
func NewUsageCache(maxAge time.Duration) *UsageCache {
	return &UsageCache{maxAge: maxAge, cache: map[string]Usage{}}
}

// Get returns the usage of dir, walking it if the last walk is too old.
// Concurrent callers wait for one walk rather than start their own.
func (c *UsageCache) Get(ctx context.Context, dir string) (Usage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u, ok := c.cache[dir]; ok && time.Since(u.At) < c.maxAge {
		return u, nil
	}
	u, err := DirUsage(ctx, dir)
	if err != nil {
		return Usage{}, err
	}
	c.cache[dir] = u
	return u, nil
}
