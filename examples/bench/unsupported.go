//go:build !unix

// Command bench measures txnpair against its baselines on Unix systems; see
// main.go. The baselines it compares against (renameio, fcntl locks) do not
// exist elsewhere, so on other systems it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench: runs on Unix systems only (the renameio and fcntl baselines do not exist here)")
	os.Exit(2)
}
