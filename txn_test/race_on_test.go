//go:build race

package txn_test

// raceEnabled: the race detector slows everything several times; the stress
// test runs shorter under it.
const raceEnabled = true
