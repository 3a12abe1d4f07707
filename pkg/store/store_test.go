package store

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crid-dev/crid/pkg/errdefs"
)

// When this variable is set the test binary acts as another crid: it holds
// the store of the named dir until its stdin closes.
const holdEnv = "CRID_STORE_TEST_HOLD"

// When this one is set, it writes a record unsynced and exits at once, as
// a crid killed after a RunPodSandbox would.
const crashEnv = "CRID_STORE_TEST_CRASH"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		s, err := Open(dir)
		if err == nil {
			err = s.PutUnsynced(BucketSandboxes, "p1", map[string]string{"state": "ready"})
		}
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if dir := os.Getenv(holdEnv); dir != "" {
		s, err := Open(dir)
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		bufio.NewReader(os.Stdin).ReadString('\n')
		s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestOpenCreatesSchemaAndBuckets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Schema(); err != nil || v != SchemaVersion {
		t.Fatalf("schema %d, %v; want %d", v, err, SchemaVersion)
	}
	for _, b := range buckets {
		if err := s.ForEach(b, func(string, []byte) error { return nil }); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, LogFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v, %v; want mode 0600", fi, err)
	}
}

func TestRecordsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	type rec struct{ Name string }
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(BucketSandboxes, "a", rec{"pod-a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(BucketSandboxes, "b", rec{"pod-b"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(BucketSandboxes, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(BucketSandboxes, "b"); err != nil {
		t.Fatalf("a retried delete failed: %v", err)
	}
	s.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got rec
	if err := s.Get(BucketSandboxes, "a", &got); err != nil || got.Name != "pod-a" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if err := s.Get(BucketSandboxes, "b", &got); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("deleted record: %v, want ErrNotFound", err)
	}
	var keys []string
	s.ForEach(BucketSandboxes, func(k string, _ []byte) error { keys = append(keys, k); return nil })
	if strings.Join(keys, ",") != "a" {
		t.Fatalf("keys %v", keys)
	}
	if err := s.Put("no-such-bucket", "k", 1); err == nil {
		t.Fatal("put into an unknown bucket succeeded")
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	setSchema := func(s *Store, v string) {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.commit([]op{{kind: opPut, bucket: metaBucket, key: schemaKey, value: []byte(v)}}, true); err != nil {
			t.Fatal(err)
		}
	}
	setSchema(s, "99")
	s.Close()

	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Fatalf("want a refusal naming schema 99, got %v", err)
	}
	// The refusal released the lock and wrote nothing: a fixed log opens
	// again.
	s = &Store{dir: dir}
	f, err := os.OpenFile(s.path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.load(f); err != nil {
		t.Fatal(err)
	}
	setSchema(s, "1")
	s.f.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("reopen after refusal: %v", err)
	}
	s.Close()
}

func TestSecondOpenNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("holder said %q", line)
	}

	_, err := Open(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("want InUseError, got %v", err)
	}
	if inUse.PID != cmd.Process.Pid {
		t.Fatalf("holder pid %d, want %d (%v)", inUse.PID, cmd.Process.Pid, err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, LockFile)) {
		t.Errorf("message %q does not name the lock file", err)
	}

	// Once the holder is gone, even without clean-up, the dir opens.
	stdin.Close()
	cmd.Wait()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("open after the holder exited: %v", err)
	}
	s.Close()
}

func TestUpdateIsAllOrNothing(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(func(tx *Tx) error {
		if err := tx.Put(BucketImages, "a", 1); err != nil {
			return err
		}
		return tx.Put("no-such-bucket", "b", 2)
	})
	if err == nil {
		t.Fatal("a transaction with a failing write committed")
	}
	var v int
	if err := s.Get(BucketImages, "a", &v); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("the first write of a failed transaction landed: %v", err)
	}
}

// BenchmarkPut is what each record write costs a request (a record
// written and synced): a pod's start writes two, a container's life about
// six.
func BenchmarkPut(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := map[string]string{"id": "0123456789abcdef", "state": "running"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Put(BucketContainers, "c", rec); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLockLeftToAChildIsWaitedFor: a crid killed as it forked leaves the
// child holding the lock's descriptor until the child execs (or exits);
// the holder the file names is gone, so the next crid waits for the lock
// instead of refusing to start.
func TestLockLeftToAChildIsWaitedFor(t *testing.T) {
	dir := t.TempDir()
	f, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The child shares the locked file description, as a fork does.
	child := exec.Command("sleep", "0.5")
	child.ExtraFiles = []*os.File{f}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	// The holder named in the file, a process that is no more.
	gone := exec.Command("true")
	gone.Run()
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(gone.Process.Pid)+"\n"), 0)
	f.Close()

	start := time.Now()
	g, err := LockDir(dir)
	if err != nil {
		t.Fatalf("the lock was not waited for: %v", err)
	}
	g.Close()
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("locked after %v, while the child held it for 0.5 s", took)
	}
}

// An unsynced commit is in the log for every reader at once, survives a
// crash of its writer, and is synced by the next synced commit, by Sync
// and by Close.
func TestUnsyncedCommits(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the crashing writer: %v: %s", err, out)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got map[string]string
	if err := s.Get(BucketSandboxes, "p1", &got); err != nil || got["state"] != "ready" {
		t.Fatalf("after its writer died, the unsynced record is %v, %v; want state ready", got, err)
	}

	steps := []struct {
		name string
		do   func() error
		want bool // a commit left unsynced
	}{
		{"PutUnsynced", func() error { return s.PutUnsynced(BucketSandboxes, "p2", got) }, true},
		{"Sync", s.Sync, false},
		{"Sync with nothing to sync", s.Sync, false},
		{"PutUnsynced again", func() error { return s.PutUnsynced(BucketSandboxes, "p3", got) }, true},
		{"a synced Put after it", func() error { return s.Put(BucketContainers, "c1", got) }, false},
		{"PutUnsynced before Close", func() error { return s.PutUnsynced(BucketSandboxes, "p4", got) }, true},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if u := !s.Synced(); u != st.want {
			t.Errorf("after %s: a commit unsynced: %v, want %v", st.name, u, st.want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.synced != s.commits {
		t.Errorf("Close left %d commits unsynced", s.commits-s.synced)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"p1", "p2", "p3", "p4"} {
		if err := s.Get(BucketSandboxes, k, &got); err != nil {
			t.Errorf("record %s after a reopen: %v", k, err)
		}
	}
}
