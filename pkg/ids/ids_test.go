package ids

import (
	"regexp"
	"testing"
)

func TestNewIsSixtyFourHexDigitsAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) || seen[id] {
			t.Fatalf("New() = %q (seen: %v)", id, seen[id])
		}
		seen[id] = true
	}
}
