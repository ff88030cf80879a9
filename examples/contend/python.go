package main

// pythonWriter follows conda's protocol for the repodata cache
// (conda/gateways/disk/lock.py and RepodataCache.save): open the metadata
// file, lockf byte 21 exclusively, replace the data file by rename, rewrite
// the metadata in place through the locked file, unlock. Unlike conda's own
// writer it flushes the metadata before it unlocks (conda's nesting of the
// lock inside the buffered file lets peers see the metadata empty), and it
// waits for the lock in the kernel rather than retrying LOCK_NB once a
// second, so that it competes on equal terms.
//
// Arguments: META DATA DURATION DURABLE. It waits for "go" on stdin, then
// prints its report as one JSON line.
const pythonWriter = `
import fcntl, hashlib, json, os, random, sys, time

meta, data, duration, durable = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "true"
units = {"ms": 1e-3, "s": 1.0, "m": 60.0}
for suffix in ("ms", "s", "m"):
    if duration.endswith(suffix):
        seconds = float(duration[: -len(suffix)]) * units[suffix]
        break
else:
    sys.exit("bad duration " + duration)

report = {"writer": "python-conda", "commits": 0, "reads": 0, "inconsistent": [], "waits_ns": []}
if sys.stdin.readline() != "go\n":
    report["error"] = "no start signal"
    print(json.dumps(report)); sys.exit(1)

def check(m, d):
    s = json.loads(m)
    if hashlib.sha256(d).hexdigest() != s["sha256"]:
        raise ValueError("counter %d by %s: the data's SHA-256 is not the metadata's" % (s["counter"], s["writer"]))
    if json.loads(d)["counter"] != s["counter"]:
        raise ValueError("counter mismatch")
    return s["counter"]

last = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    with open(meta, "r+") as f:
        t0 = time.monotonic_ns()
        fcntl.lockf(f, fcntl.LOCK_EX, 1, 21)
        report["waits_ns"].append(time.monotonic_ns() - t0)
        try:
            m = f.read()
            with open(data, "rb") as df:
                d = df.read()
            report["reads"] += 1
            try:
                c = check(m, d)
                if c < last:
                    report["inconsistent"].append("counter went back from %d to %d" % (last, c))
                last = c
            except Exception as e:
                report["inconsistent"].append(repr(e)[:200])
            last += 1
            nd = json.dumps({"counter": last, "writer": "python-conda", "pad": "y" * random.randrange(16384)}).encode()
            tmp = data + ".py-tmp"
            with open(tmp, "wb") as t:
                t.write(nd)
                if durable:
                    t.flush(); os.fsync(t.fileno())
            os.replace(tmp, data)
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"counter": last, "sha256": hashlib.sha256(nd).hexdigest(), "size": len(nd), "writer": "python-conda"}, indent=2))
            f.flush()
            if durable:
                os.fsync(f.fileno())
                dfd = os.open(os.path.dirname(data) or ".", os.O_RDONLY)
                os.fsync(dfd); os.close(dfd)
            report["commits"] += 1
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN, 1, 21)
print(json.dumps(report))
`
