package server

import (
	"io"
	"strings"
	"testing"
)

// endless reads as many bytes as it is asked for, n in all.
type endless struct{ n int64 }

func (r *endless) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return int(k), nil
}

func TestBoundedOutputKeepsTheLimitAndCountsTheRest(t *testing.T) {
	// Offering ReadFrom would let io.Copy, which exec.Cmd uses for a
	// command's output, bypass Write and the limit with it.
	if _, ok := any(&boundedOutput{}).(io.ReaderFrom); ok {
		t.Fatal("boundedOutput offers ReadFrom: io.Copy would bypass its limit")
	}
	for _, tc := range []struct {
		name    string
		printed int64
		limit   int
	}{
		{"nothing printed", 0, 1024},
		{"less than the limit", 100, 1024},
		{"exactly the limit", 1024, 1024},
		{"100 MB through a 256 KiB limit", 100 << 20, 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &boundedOutput{max: tc.limit}
			n, err := io.Copy(b, &endless{n: tc.printed})
			if err != nil || n != tc.printed {
				t.Fatalf("copy: %d bytes, %v; want all %d read", n, err, tc.printed)
			}
			kept := min(tc.printed, int64(tc.limit))
			if int64(len(b.data)) != kept || b.dropped != tc.printed-kept {
				t.Fatalf("kept %d, dropped %d; want %d and %d", len(b.data), b.dropped, kept, tc.printed-kept)
			}
			if cap(b.data) > 2*tc.limit+64 {
				t.Errorf("holds %d bytes of buffer for a %d-byte limit", cap(b.data), tc.limit)
			}
			note := b.truncation("stdout")
			if (note != "") != (b.dropped > 0) || b.dropped > 0 && !strings.Contains(note, "stdout truncated") {
				t.Errorf("truncation note %q with %d dropped", note, b.dropped)
			}
		})
	}
}
