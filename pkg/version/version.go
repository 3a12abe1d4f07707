// Package version says which crid this is.
package version

import "runtime/debug"

// Version is crid's release, in semantic-versioning form. Release builds
// set it with -ldflags "-X github.com/crid-dev/crid/pkg/version.Version=...".
var Version = "0.1.0-dev"

// GitCommit is the commit crid was built from, set by the build scripts
// with -ldflags; when empty, the commit Go stamped into the binary is used.
var GitCommit = ""

// Commit returns the commit crid was built from, or "unknown".
func Commit() string {
	if GitCommit != "" {
		return GitCommit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// String is the one-line form printed by `crid version`.
func String() string {
	return "crid " + Version + " (commit " + Commit() + ")"
}
