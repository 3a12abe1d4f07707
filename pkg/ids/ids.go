// Package ids makes the IDs of sandboxes and containers: 64 hex digits,
// as containerd's and CRI-O's are. Finding a record by an ID or a unique
// prefix of it is the records package's.
package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a random 64-digit hex ID.
func New() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
