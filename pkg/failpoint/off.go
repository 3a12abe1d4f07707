//go:build !failpoints

package failpoint

// Hit marks a point where a crash is tested; it does nothing in this build.
func Hit(string) {}
