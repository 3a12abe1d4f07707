package image

import (
	"context"
	"sync"
)

// sharedWork runs one piece of work per key however many callers ask for
// it at once, as singleflight does, but each caller waits under its own
// context: a caller whose deadline passes gets its own error and leaves,
// and the work itself is cancelled only when no caller is left waiting.
// (singleflight runs the work under the first caller's context, so a
// second caller, never cancelled, failed with Canceled once the first
// caller's deadline passed.)
type sharedWork struct {
	mu    sync.Mutex
	calls map[string]*sharedCall
}

type sharedCall struct {
	waiters int
	cancel  context.CancelFunc
	done    chan struct{}
	val     any
	err     error
}

// Do runs fn for key unless a run is under way, and waits for its result
// or for ctx to end. fn's context carries ctx's values but not its
// cancellation: it ends when every caller has gone, and the last caller
// to go returns once fn has.
func (g *sharedWork) Do(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*sharedCall{}
	}
	c, ok := g.calls[key]
	if !ok {
		workCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &sharedCall{cancel: cancel, done: make(chan struct{})}
		g.calls[key] = c
		go func() {
			c.val, c.err = fn(workCtx)
			g.mu.Lock()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			cancel()
			close(c.done)
		}()
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		last := c.waiters == 0
		if last {
			// Nobody wants it any more: stop the work, and let the next
			// caller start afresh rather than join a run being cancelled.
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		if last {
			// The last caller waits for the cancelled work to have undone
			// itself (a pull removes its temporary layers), so that what
			// it returns to finds nothing half-made.
			<-c.done
		}
		return nil, ctx.Err()
	}
}
