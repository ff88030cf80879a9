"""A writer that follows conda's protocol for its repodata cache pair.

Usage: conda_writer.py META DATA SECONDS

Until SECONDS have passed it updates the pair as conda does: open the
metadata file, take fcntl.lockf(f, LOCK_EX, 1, 21) (blocking), read both
files, write the new data to a temporary file and os.rename it over the data
file, rewrite the metadata in place through the locked handle (seek 0,
truncate, write, flush), and unlock. The metadata is JSON carrying a counter,
which each update increments, and the sha256 of the data.

It prints one JSON line: {"commits": n, "inconsistent": n, "errors": [...]}.
"""

import fcntl
import hashlib
import json
import os
import sys
import time

LOCK_BYTE = 21


def main():
    meta, data, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    deadline = time.monotonic() + seconds
    commits, inconsistent, errors = 0, 0, []
    tmp = "%s.conda-tmp-%d" % (data, os.getpid())
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        with open(meta, "r+") as f:
            fcntl.lockf(f, fcntl.LOCK_EX, 1, LOCK_BYTE)
            try:
                try:
                    state = json.loads(f.read())
                    with open(data, "rb") as d:
                        old = d.read()
                except Exception as e:  # noqa: BLE001 - report, do not die
                    errors.append("read: %r" % (e,))
                    continue
                if hashlib.sha256(old).hexdigest() != state.get("sha256"):
                    inconsistent += 1
                new = ("python pid %d seq %d\n" % (os.getpid(), seq)).encode() * (1 + seq % 50)
                with open(tmp, "wb") as t:
                    t.write(new)
                os.rename(tmp, data)
                state = {"counter": state["counter"] + 1,
                         "sha256": hashlib.sha256(new).hexdigest()}
                f.seek(0)
                f.truncate()
                f.write(json.dumps(state, indent=2))
                f.flush()
                commits += 1
            finally:
                fcntl.lockf(f, fcntl.LOCK_UN, 1, LOCK_BYTE)
    print(json.dumps({"commits": commits, "inconsistent": inconsistent, "errors": errors}))


if __name__ == "__main__":
    main()
