//go:build !txnpair_broken_dirsync

package txn

// brokenDirSync is false in every real build. See brokensync_on.go.
const brokenDirSync = false
