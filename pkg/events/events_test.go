package events

import (
	"testing"
)

func TestFanOutInOrderAndDropWhenFull(t *testing.T) {
	b := New()
	a, cancelA := b.Subscribe()
	slow, cancelSlow := b.Subscribe()
	defer cancelSlow()
	for i := 0; i < buffer+10; i++ {
		b.Publish(Event{ContainerID: "c", Type: Type(i % 4)})
		if i < buffer {
			if e := <-a; e.Type != Type(i%4) || e.At.IsZero() {
				t.Fatalf("event %d: %+v", i, e)
			}
		}
	}
	// a read the first buffer's worth and has room for the rest; slow
	// never read, and missed what came after its buffer filled.
	if got := b.Dropped(); got != 10 {
		t.Errorf("dropped %d, want the 10 past the slow subscriber's buffer", got)
	}
	if len(a) != 10 {
		t.Errorf("a holds %d, want 10", len(a))
	}
	if len(slow) != buffer {
		t.Errorf("slow subscriber holds %d, want a full buffer", len(slow))
	}
	cancelA()
	cancelA() // twice is harmless
	if _, open := <-a; open {
		// drain what was buffered, then closed
		for range a {
		}
	}
	if n := len(b.subs); n != 1 {
		t.Errorf("%d subscribers after one cancelled", n)
	}
	b.Close()
	if _, open := <-slow; open {
		for range slow {
		}
	}
	if late, _ := b.Subscribe(); func() bool { _, open := <-late; return open }() {
		t.Error("a subscription after Close is open")
	}
	var nilBroker *Broker
	nilBroker.Publish(Event{}) // a nil broker drops
}
