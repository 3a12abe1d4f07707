package cgroups

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capSysResource is CAP_SYS_RESOURCE's bit in /proc/<pid>/status CapEff.
const capSysResource = 24

// ClampOOMScoreAdj returns the oom_score_adj crid can give a process. Only
// a process with CAP_SYS_RESOURCE may set a score below its own; some
// hosts (this project's CI among them) withhold it even from root, and
// the kernel then refuses the write with EACCES, failing the container.
// Without the capability, a lower score is raised to crid's own: the
// container is then as safe from the OOM killer as the runtime itself.
// The executor writes the result to the container's init.
func ClampOOMScoreAdj(v int) (int, error) {
	if v < -1000 || v > 1000 {
		return 0, fmt.Errorf("oom_score_adj %d is outside -1000..1000", v)
	}
	hasCap, err := hasCapability(capSysResource)
	if err != nil {
		return 0, err
	}
	if hasCap {
		return v, nil
	}
	own, err := readOOMScoreAdj("self")
	if err != nil {
		return 0, err
	}
	if v < own {
		return own, nil
	}
	return v, nil
}

func readOOMScoreAdj(pid string) (int, error) {
	data, err := os.ReadFile("/proc/" + pid + "/oom_score_adj")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

func hasCapability(bit uint) (bool, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, err
			}
			return caps&(1<<bit) != 0, nil
		}
	}
	return false, fmt.Errorf("no CapEff in /proc/self/status")
}
