// Package failpoint names the points where a crash of crid is tested:
// between the steps of every call that changes the node. A test binary
// built with the failpoints tag dies there (SIGKILL, as the OOM killer or
// a node's power would end it) when told to; every other build compiles
// Hit to nothing.
//
// The tagged build reads its orders from the environment once, at start:
// CRID_FAILPOINT names the point to die at, CRID_FAILPOINT_TRACE a file
// to which each point reached is appended, a line each, so that a test
// can learn every point a sequence of calls passes and walk them all;
// CRID_OVERRIDE_<name> replaces a value the host gives (Override), such
// as BOOT_ID, which a test cannot change without a reboot.
// That process-wide state is the one departure from "no global state
// beyond main": it exists only in the test build, and threading a
// crash switch through every call would put it in the production path.
package failpoint
