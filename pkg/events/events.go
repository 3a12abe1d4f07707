// Package events carries the lifecycle changes of containers and pods to
// whoever listens (the CRI's GetContainerEvents streams, the kubelet's
// evented PLEG). Publishing never blocks: a listener that falls more than
// a buffer behind loses events, and is told by the count Dropped, as the
// kubelet relists on its own period anyway.
package events

import (
	"sync"
	"sync/atomic"
	"time"
)

// Type is what happened.
type Type int

const (
	Created Type = iota
	Started
	Stopped
	Deleted
)

// Event is one change. A pod's own events name the pod as the container
// too, as containerd's do.
type Event struct {
	ContainerID, SandboxID string
	Type                   Type
	At                     time.Time
}

// buffer is how far a listener may fall behind.
const buffer = 1024

// Broker fans events out to subscribers. A nil Broker drops everything.
type Broker struct {
	mu      sync.Mutex
	subs    map[chan Event]struct{}
	closed  bool
	dropped atomic.Uint64
}

// New returns a broker without subscribers.
func New() *Broker { return &Broker{subs: map[chan Event]struct{}{}} }

// Publish sends e to every subscriber that has room for it.
func (b *Broker) Publish(e Event) {
	if b == nil {
		return
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			b.dropped.Add(1)
		}
	}
}

// Subscribe returns a channel of the events published from now on, and
// the function that ends the subscription (and closes the channel).
func (b *Broker) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Close ends every subscription (their channels close) and refuses new
// ones: a shutting-down crid must not wait for its listeners to leave.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

// Dropped counts events a slow subscriber missed.
func (b *Broker) Dropped() uint64 {
	if b == nil {
		return 0
	}
	return b.dropped.Load()
}
