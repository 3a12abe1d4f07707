package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestStartTimeOfAProcessJustStarted(t *testing.T) {
	before := time.Now()
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	got, err := StartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// btime is whole seconds and the start a clock tick: about a second
	// of slack each way.
	if got.Before(before.Add(-2*time.Second)) || got.After(time.Now().Add(2*time.Second)) {
		t.Errorf("started at %v, want about %v", got, before)
	}
	self, err := StartTicks(os.Getpid())
	if err != nil || self == 0 {
		t.Errorf("own start: %d, %v", self, err)
	}
	if _, err := StartTicks(1 << 30); err == nil {
		t.Error("a pid no process has: no error")
	}
}
