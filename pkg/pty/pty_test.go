package pty

import (
	"strings"
	"testing"
)

func TestWhatTheSlaveWritesTheMasterReads(t *testing.T) {
	master, slave, err := Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	if _, err := slave.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := master.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "hello\r\n") {
		t.Fatalf("master read %q, %v (a terminal turns LF into CR LF)", buf[:n], err)
	}
}
