//go:build !failpoints

package failpoint

// Hit marks a point where a crash is tested; it does nothing in this build.
func Hit(string) {}

// Override is value; only the test build lets the environment replace it.
func Override(_, value string) string { return value }
