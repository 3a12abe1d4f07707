package main

import (
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	now := time.Date(2026, 12, 1, 18, 59, 42, 123456789, time.UTC)
	tests := []struct{ format, want string }{
		{"%3t", "18:59:42.123"},
		{"%t", "18:59:42"},
		{"at %9t, 100%%", "at 18:59:42.123456789, 100%"},
	}
	for _, tt := range tests {
		got, err := render(tt.format, now)
		if err != nil || got != tt.want {
			t.Errorf("render(%q) = %q, %v; want %q", tt.format, got, err, tt.want)
		}
	}
	for _, bad := range []string{"%c", "%3", "%10t", "cpu %[cpu]"} {
		if got, err := render(bad, now); err == nil {
			t.Errorf("render(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args   []string
		delay  int
		format string
		ok     bool
	}{
		{[]string{"-d0", "%3t"}, 0, "%3t", true},
		{[]string{"-d", "250", "%t"}, 250, "%t", true},
		{[]string{"%t"}, 1000, "%t", true},
		{[]string{"-dx", "%t"}, 0, "", false},
		{[]string{"-d"}, 0, "", false},
		{[]string{"-d0"}, 0, "", false},
	}
	for _, tt := range tests {
		delay, format, err := parseArgs(tt.args)
		if (err == nil) != tt.ok || err == nil && (delay != tt.delay || format != tt.format) {
			t.Errorf("parseArgs(%q) = %d, %q, %v", tt.args, delay, format, err)
		}
	}
}
