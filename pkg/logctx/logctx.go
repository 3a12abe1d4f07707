// Package logctx carries a logger in a context, with the IDs of the pod
// and container a request is about, so every line logged on its behalf
// names them without each caller repeating them. The gRPC interceptor
// puts in what the request names (pod_sandbox_id, container_id); a
// handler or manager adds what it learns (the ID of the container it
// creates). A key already carried with the same value is not added
// again, so a line never names one container twice.
//
// Keys used across crid: "pod" (a pod sandbox ID), "podName"
// (namespace/name), "container" (a container ID), "name" (a container's
// name in its pod).
package logctx

import (
	"context"
	"maps"
	"slices"
	"sync"

	"k8s.io/klog/v2"
)

type (
	carriedKey struct{}
	trackerKey struct{}
)

// tracker collects what is added below a request's context, for the
// request's own last line: the ID of the pod or container a call made.
type tracker struct {
	mu   sync.Mutex
	kv   []any
	keys map[string]bool
}

// Track returns ctx, under which every key With adds is also collected,
// and the function that returns them (each key's first value).
func Track(ctx context.Context) (context.Context, func() []any) {
	t := &tracker{keys: map[string]bool{}}
	return context.WithValue(ctx, trackerKey{}, t), func() []any {
		t.mu.Lock()
		defer t.mu.Unlock()
		return slices.Clone(t.kv)
	}
}

// With returns ctx with a logger that also carries the key/value pairs
// of kv not carried already. Empty values are skipped.
func With(ctx context.Context, kv ...any) context.Context {
	have, _ := ctx.Value(carriedKey{}).(map[string]any)
	var add []any
	var next map[string]any
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok || kv[i+1] == "" || kv[i+1] == nil {
			continue
		}
		if v, ok := have[k]; ok && v == kv[i+1] {
			continue
		}
		if next == nil {
			next = maps.Clone(have)
			if next == nil {
				next = map[string]any{}
			}
		}
		next[k] = kv[i+1]
		add = append(add, k, kv[i+1])
	}
	if len(add) == 0 {
		return ctx
	}
	if t, ok := ctx.Value(trackerKey{}).(*tracker); ok {
		t.mu.Lock()
		for i := 0; i < len(add); i += 2 {
			if k := add[i].(string); !t.keys[k] {
				t.keys[k] = true
				t.kv = append(t.kv, k, add[i+1])
			}
		}
		t.mu.Unlock()
	}
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues(add...))
	return context.WithValue(ctx, carriedKey{}, next)
}

// From is ctx's logger: the process's own when ctx carries none.
func From(ctx context.Context) klog.Logger { return klog.FromContext(ctx) }
