// Command nnp stands in for e2e-test-images/nonewprivs: installed setuid
// root, it prints the effective uid it runs with, which is 0 when the
// kernel honoured the setuid bit and the caller's uid under no_new_privs.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
