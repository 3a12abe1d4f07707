package container

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crid-dev/crid/pkg/oci/monitor"
)

// exitWatcher reports when a monitor writes a container's exit record
// (exit.json renamed into its bundle), so container state is kept in
// memory and no request reads the disk for it.
type exitWatcher struct {
	f      *os.File
	fd     int
	report func(id string)

	mu    sync.Mutex
	byWD  map[int]string
	byID  map[string]int
	ended chan struct{}
}

func newExitWatcher(report func(id string)) (*exitWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &exitWatcher{f: os.NewFile(uintptr(fd), "exit-watch"), fd: fd, report: report,
		byWD: map[int]string{}, byID: map[string]int{}, ended: make(chan struct{})}
	go w.run()
	return w, nil
}

func (w *exitWatcher) add(id, bundle string) error {
	wd, err := unix.InotifyAddWatch(w.fd, bundle, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE)
	if err != nil {
		return fmt.Errorf("watch %s: %w", bundle, err)
	}
	w.mu.Lock()
	w.byWD[wd], w.byID[id] = id, wd
	w.mu.Unlock()
	return nil
}

func (w *exitWatcher) remove(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wd, ok := w.byID[id]; ok {
		unix.InotifyRmWatch(w.fd, uint32(wd))
		delete(w.byID, id)
		delete(w.byWD, wd)
	}
}

func (w *exitWatcher) close() {
	w.f.Close()
	<-w.ended
}

func (w *exitWatcher) run() {
	defer close(w.ended)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			name := string(trimNul(nameBytes))
			if filepath.Base(name) != monitor.ExitFile {
				continue
			}
			w.mu.Lock()
			id := w.byWD[int(ev.Wd)]
			w.mu.Unlock()
			if id != "" {
				w.report(id)
			}
		}
	}
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
