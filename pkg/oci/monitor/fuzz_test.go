package monitor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzMonitorRequest feeds crid-podmon's request parser hostile lines
// through its socket: whatever comes, the monitor answers or hangs up, and
// goes on serving. (The socket is the pod's: only root reaches it, but a
// parser in C that a bad line could crash must not exist.)
func FuzzMonitorRequest(f *testing.F) {
	for _, seed := range []string{
		`{"op":"pid","id":"abc"}`,
		`{"op":"start","id":"c1","bundle":"/run/crid/b","log":"/var/log/pods/x/c/0.log","stdin":true,"stdinOnce":true}`,
		`{"op":"kill","id":"c1","signal":15}`,
		`{"op":"resize","id":"c1","width":80,"height":24}`,
		`{"op":"reopen","id":"\u003cc1\u003e"}`,
		`{"op":"attach","id":"c1"}`,
		`{"op":"x","id":"\ud83d\ude00"}`,
		`{"op":"pid","id":"` + strings.Repeat("a", 300) + `"}`,
		`{"op":"kill","signal":-9223372036854775808}`,
		`{ "op" : "pid" , "bogus" : null , "n" : 12 }`,
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	client, err := Ensure(context.Background(), binaries(f), dir, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { client.Shutdown(context.Background()) })
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") {
			line = strings.ReplaceAll(line, "\n", " ")
		}
		// The fuzzer must not start containers or end the monitor.
		var req Request
		if json.Unmarshal([]byte(line), &req) == nil && (req.Op == "start" || req.Op == "shutdown") {
			return
		}
		rawCall(dir, line)
		if _, err := client.Pid(context.Background(), "none"); err == nil || !strings.Contains(err.Error(), "not running") {
			t.Fatalf("after %q the monitor answers %v", line, err)
		}
	})
}
