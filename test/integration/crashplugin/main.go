// Command crashplugin is a CNI plugin for crid's failpoint walk: placed
// last in a test's chain, it kills its parent (crid, which executes
// plugins directly) in the middle of an ADD when the file named by its
// configuration's "trigger" exists, removing the file first, so that
// exactly one ADD dies there. Otherwise it passes the previous result on,
// as a plugin that does nothing must.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
)

func main() {
	var conf struct {
		CNIVersion string          `json:"cniVersion"`
		Trigger    string          `json:"trigger"`
		PrevResult json.RawMessage `json:"prevResult"`
	}
	switch os.Getenv("CNI_COMMAND") {
	case "VERSION":
		fmt.Print(`{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}`)
		return
	case "ADD":
		if err := json.NewDecoder(os.Stdin).Decode(&conf); err != nil {
			fmt.Printf(`{"cniVersion":"1.0.0","code":6,"msg":%q}`, err.Error())
			os.Exit(1)
		}
		if conf.Trigger != "" && os.Remove(conf.Trigger) == nil {
			syscall.Kill(os.Getppid(), syscall.SIGKILL)
			os.Exit(1)
		}
		os.Stdout.Write(conf.PrevResult)
	}
	// DEL, CHECK, GC, STATUS: nothing of its own to undo or check.
}
