package image

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSharedWorkFollowsEachCallersOwnContext(t *testing.T) {
	var g sharedWork
	release := make(chan struct{})
	runs := 0
	work := func(ctx context.Context) (any, error) {
		runs++
		select {
		case <-release:
			return "image", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	first := make(chan error, 1)
	go func() { _, err := g.Do(short, "busybox", work); first <- err }()
	// Wait until the first caller's run is under way, then join it.
	for {
		g.mu.Lock()
		started := g.calls["busybox"] != nil
		g.mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	second := make(chan any, 1)
	go func() { v, _ := g.Do(context.Background(), "busybox", work); second <- v }()
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the first caller, past its deadline: %v; want DeadlineExceeded", err)
	}
	close(release)
	if v := <-second; v != "image" {
		t.Fatalf("the second caller got %v; want the shared run's result", v)
	}
	if runs != 1 {
		t.Fatalf("the work ran %d times; want once, shared", runs)
	}
}

func TestSharedWorkStopsWhenEveryCallerHasGone(t *testing.T) {
	var g sharedWork
	cancelled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	_, err := g.Do(ctx, "busybox", func(ctx context.Context) (any, error) {
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller: %v; want Canceled", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the work was not cancelled when its last caller left")
	}
}
