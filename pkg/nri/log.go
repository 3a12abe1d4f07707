package nri

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"
)

// klogLogger carries the NRI library's messages into crid's log: warnings
// and errors always, its news (a plugin connected, each sync message) at
// verbosity 2, its debug chatter only when crid logs each request.
type klogLogger struct{}

func (klogLogger) Debugf(_ context.Context, format string, args ...any) {
	klog.V(4).InfoSDepth(2, fmt.Sprintf(format, args...), "from", "nri")
}

func (klogLogger) Infof(_ context.Context, format string, args ...any) {
	klog.V(2).InfoSDepth(2, fmt.Sprintf(format, args...), "from", "nri")
}

func (klogLogger) Warnf(_ context.Context, format string, args ...any) {
	klog.InfoSDepth(2, fmt.Sprintf(format, args...), "from", "nri", "level", "warning")
}

func (klogLogger) Errorf(_ context.Context, format string, args ...any) {
	klog.ErrorSDepth(2, nil, fmt.Sprintf(format, args...), "from", "nri")
}
