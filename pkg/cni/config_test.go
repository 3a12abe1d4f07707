package cni

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func plugin(t testing.TB, dir, name string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
}

const bridgeList = `{"cniVersion":"1.0.0","name":"crid","plugins":[{"type":"bridge"},{"type":"portmap"}]}`

func TestDiscover(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		plugins  map[string]os.FileMode
		wantFile string   // the network chosen, or "" for not ready
		wantWhy  []string // strings the not-ready reason must name
	}{
		{name: "no config dir", files: nil, wantWhy: []string{"no network configuration"}},
		{name: "empty dir", files: map[string]string{"README": "x"}, wantWhy: []string{"no network configuration"}},
		{
			name:     "conflist with its plugins",
			files:    map[string]string{"10-crid.conflist": bridgeList},
			plugins:  map[string]os.FileMode{"bridge": 0o755, "portmap": 0o755},
			wantFile: "10-crid.conflist",
		},
		{
			name:    "a plugin is missing",
			files:   map[string]string{"10-crid.conflist": bridgeList},
			plugins: map[string]os.FileMode{"bridge": 0o755},
			wantWhy: []string{"10-crid.conflist", `plugin "portmap" not found`},
		},
		{
			name:    "a plugin is not executable",
			files:   map[string]string{"10-crid.conflist": bridgeList},
			plugins: map[string]os.FileMode{"bridge": 0o755, "portmap": 0o644},
			wantWhy: []string{`plugin "portmap" not found`},
		},
		{
			name: "a broken file does not hide a good one",
			files: map[string]string{
				"05-broken.conflist": "{not json",
				"10-crid.conflist":   bridgeList,
			},
			plugins:  map[string]os.FileMode{"bridge": 0o755, "portmap": 0o755},
			wantFile: "10-crid.conflist",
		},
		{
			name:     "the first in lexical order wins",
			files:    map[string]string{"20-b.conflist": bridgeList, "10-a.conf": `{"cniVersion":"0.4.0","name":"a","type":"bridge"}`},
			plugins:  map[string]os.FileMode{"bridge": 0o755, "portmap": 0o755},
			wantFile: "10-a.conf",
		},
		{
			name:    "a plugin type with a path is refused",
			files:   map[string]string{"10-a.conf": `{"cniVersion":"0.4.0","name":"a","type":"../../bin/sh"}`},
			wantWhy: []string{"not a plain file name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			confDir := filepath.Join(t.TempDir(), "net.d")
			binDir := t.TempDir()
			if tt.files != nil {
				os.MkdirAll(confDir, 0o755)
			}
			for n, text := range tt.files {
				os.WriteFile(filepath.Join(confDir, n), []byte(text), 0o644)
			}
			for n, mode := range tt.plugins {
				plugin(t, binDir, n, mode)
			}
			net, err := Discover(confDir, []string{t.TempDir(), binDir})
			if tt.wantFile != "" {
				if err != nil {
					t.Fatalf("not ready: %v", err)
				}
				if filepath.Base(net.File) != tt.wantFile {
					t.Fatalf("chose %s, want %s", net.File, tt.wantFile)
				}
				return
			}
			var nr *NotReadyError
			if !errors.As(err, &nr) {
				t.Fatalf("want NotReadyError, got %v (%v)", err, net)
			}
			for _, w := range tt.wantWhy {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("reason %q does not mention %q", err, w)
				}
			}
		})
	}
}

// BenchmarkDiscover is what Status and every CNI operation pay to follow the
// config dir as it is now (a directory read, one parse, a stat per plugin).
func BenchmarkDiscover(b *testing.B) {
	confDir, binDir := b.TempDir(), b.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-crid.conflist"), []byte(bridgeList), 0o644); err != nil {
		b.Fatal(err)
	}
	plugin(b, binDir, "bridge", 0o755)
	plugin(b, binDir, "portmap", 0o755)
	for b.Loop() {
		if _, err := Discover(confDir, []string{binDir}); err != nil {
			b.Fatal(err)
		}
	}
}
