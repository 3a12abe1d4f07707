package monitor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxLogLine is where a line without a newline is cut into partial lines,
// as the kubelet's reader expects: a full line is tagged F, its pieces P.
const maxLogLine = 16 << 10

// LogWriter writes container output in the CRI log format,
// "<RFC3339Nano> <stream> <P|F> <content>\n", to a file it can reopen for
// the kubelet's rename-then-reopen rotation.
type LogWriter struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenLog opens (appending) or creates path; an empty path discards.
func OpenLog(path string) (*LogWriter, error) {
	w := &LogWriter{path: path}
	return w, w.Reopen()
}

// Reopen closes the file and opens path again: after the kubelet renamed
// the old file away, new lines go to a new file, none lost (the lock holds
// writers back while the file changes).
func (w *LogWriter) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.path == "" {
		return nil
	}
	// Never through a symlink, anywhere on the path (crid resolved the
	// pod's log directory when the container was made): the monitor runs
	// as root, and a link planted where the log goes would have it append
	// container output to any file of the host.
	fd, err := unix.Openat2(unix.AT_FDCWD, w.path, &unix.OpenHow{
		Flags: unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT | unix.O_CLOEXEC, Mode: 0o640, Resolve: unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return fmt.Errorf("open log %s: %w", w.path, err)
	}
	f := os.NewFile(uintptr(fd), w.path)
	if w.f != nil {
		w.f.Close()
	}
	w.f = f
	return nil
}

// appendLine appends one CRI log line to b.
func appendLine(b []byte, stream string, partial bool, content []byte) []byte {
	tag := " F "
	if partial {
		tag = " P "
	}
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, tag...)
	b = append(b, content...)
	return append(b, '\n')
}

// write appends whole lines to the file, in one write.
func (w *LogWriter) write(lines []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil && len(lines) > 0 {
		w.f.Write(lines)
	}
}

// maxLogBatch bounds the lines gathered for one write.
const maxLogBatch = 64 << 10

// Copy reads a stream ("stdout" or "stderr") to its end, one log line per
// line read. It returns when r does.
func (w *LogWriter) Copy(stream string, r io.Reader) { w.copy(stream, r, false) }

// CopyTerminal is Copy for a terminal's output, whose lines end in CR LF
// (the terminal's ONLCR): the CR is the terminal's, not the program's, and
// is left out of the log.
func (w *LogWriter) CopyTerminal(r io.Reader) { w.copy("stdout", r, true) }

func (w *LogWriter) copy(stream string, r io.Reader, terminal bool) {
	br := bufio.NewReaderSize(r, maxLogLine)
	// Lines already read go out together, in one write, when no more
	// are waiting in the buffer: a burst costs a write per 64 KiB, not
	// per line, and a lone line is written as soon as it is read.
	batch := make([]byte, 0, 4<<10)
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			chunk = bytes.TrimSuffix(chunk, []byte("\n"))
			if terminal {
				chunk = bytes.TrimSuffix(chunk, []byte("\r"))
			}
			batch = appendLine(batch, stream, false, chunk)
		case err == bufio.ErrBufferFull:
			batch = appendLine(batch, stream, true, chunk)
		default:
			if len(chunk) > 0 {
				// The stream ended mid-line: what there is, as a partial
				// line (containerd's rule too). The program wrote no
				// newline, and a reader must not add one: the kubelet
				// joins partial lines without it, and a termination
				// message taken from the log (FallbackToLogsOnError) of
				// `echo -n DONE` is then "DONE", not "DONE\n".
				batch = appendLine(batch, stream, true, chunk)
			}
			w.write(batch)
			return
		}
		if br.Buffered() == 0 || len(batch) >= maxLogBatch {
			w.write(batch)
			batch = batch[:0]
		}
	}
}

// Close closes the file.
func (w *LogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
