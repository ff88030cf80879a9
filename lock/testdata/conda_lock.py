"""Take conda's repodata cache lock: fcntl.lockf on byte 21, as in
conda/gateways/disk/lock.py, for the interop tests of package lock.

Usage: conda_lock.py try|hold PATH

try:  attempt the lock once, print "acquired" or "busy <exception> <errno>",
      then exit (dropping the lock).
hold: attempt the lock, print "locked" (or "busy ..." and exit), wait for a
      line on stdin, unlock, print "unlocked", wait for stdin to close.
"""
import fcntl
import sys

LOCK_BYTE = 21


def attempt(f):
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, LOCK_BYTE)
    except OSError as e:
        print("busy", type(e).__name__, e.errno, flush=True)
        return False
    return True


def main():
    action, path = sys.argv[1], sys.argv[2]
    with open(path, "a+") as f:  # conda opens the state file "a+"
        if not attempt(f):
            return
        if action == "try":
            print("acquired", flush=True)
            return
        print("locked", flush=True)
        sys.stdin.readline()
        fcntl.lockf(f, fcntl.LOCK_UN, 1, LOCK_BYTE)
        print("unlocked", flush=True)
        sys.stdin.read()


main()
