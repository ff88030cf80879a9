//go:build txnpair_broken_dirsync

package txn

// brokenDirSync, set only by the build tag txnpair_broken_dirsync, breaks
// the protocol on purpose: Commit skips the sync of the data file's
// directory after renaming the staged file over the data file, so under Full
// a power loss right after Commit returned nil can lose the rename. The
// system tests (txn_test) build a child with this tag to prove that their
// power-loss checker reports the lost commit. Never use it otherwise.
const brokenDirSync = true
