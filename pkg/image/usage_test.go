package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDirUsageCountsHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 64<<10)
	os.WriteFile(filepath.Join(dir, "a"), big, 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "sub", "a-link"))
	os.Symlink("a", filepath.Join(dir, "sym"))

	u, err := DirUsage(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// dir, a (once for both links), sub, sym
	if u.Inodes != 4 {
		t.Errorf("inodes %d, want 4", u.Inodes)
	}
	if u.Bytes < 64<<10 || u.Bytes > 2*64<<10+3*64<<10 {
		t.Errorf("bytes %d: the 64 KiB file must count once", u.Bytes)
	}
}

func TestDirUsageOfMissingDirIsZero(t *testing.T) {
	u, err := DirUsage(context.Background(), filepath.Join(t.TempDir(), "none"))
	if err != nil || u.Inodes != 0 || u.Bytes != 0 {
		t.Fatalf("got %+v, %v", u, err)
	}
}

func TestUsageCacheServesRecentWalks(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c := NewUsageCache(time.Hour)
	first, _ := c.Get(ctx, dir)
	os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644)
	if again, _ := c.Get(ctx, dir); again != first {
		t.Fatalf("a fresh answer was walked again: %+v != %+v", again, first)
	}
	c = NewUsageCache(0)
	c.Get(ctx, dir)
	os.WriteFile(filepath.Join(dir, "newer"), []byte("x"), 0o644)
	if u, _ := c.Get(ctx, dir); u.Inodes != 3 {
		t.Fatalf("a stale answer was not refreshed: %+v", u)
	}
}

func TestDirUsageHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := DirUsage(ctx, t.TempDir()); err == nil {
		t.Fatal("a cancelled walk succeeded")
	}
}
