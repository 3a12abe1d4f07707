package logctx

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"
)

func TestIDsAreCarriedOnceEach(t *testing.T) {
	var out bytes.Buffer
	base := funcr.New(func(prefix, args string) { out.WriteString(args + "\n") }, funcr.Options{})
	ctx := klog.NewContext(context.Background(), base)

	ctx = With(ctx, "pod", "p1", "container", "")
	ctx = With(ctx, "pod", "p1", "container", "c1") // pod again: not repeated
	From(ctx).Info("Container started", "pid", 7)
	line := out.String()
	if strings.Count(line, `"pod"`) != 1 || !strings.Contains(line, `"container"="c1"`) || !strings.Contains(line, `"pid"=7`) {
		t.Fatalf("logged %q", line)
	}

	// A context derived for another container of the pod names that one.
	out.Reset()
	other := With(ctx, "container", "c2")
	From(other).Info("x")
	if !strings.Contains(out.String(), `"container"="c2"`) {
		t.Errorf("logged %q", out.String())
	}
	if With(ctx) != ctx || With(ctx, "pod", "p1") != ctx {
		t.Error("adding nothing new made a new context")
	}
}

func TestTrackCollectsWhatTheRequestLearned(t *testing.T) {
	ctx := With(context.Background(), "pod", "p1")
	ctx, learned := Track(ctx)
	With(ctx, "pod", "p1")                    // carried already
	c := With(ctx, "container", "c1")         // learned
	With(c, "container", "c2", "name", "web") // a second value of a key is not
	if got := fmt.Sprint(learned()); got != "[container c1 name web]" {
		t.Errorf("learned %s", got)
	}
}
