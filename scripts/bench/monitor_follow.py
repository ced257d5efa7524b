#!/usr/bin/env python3
"""Follow-mode benchmark for scripts/bench/monitor.sh: a writer appends RATE lines/s (taken from
LOG, in chunks every 10 ms) to a fresh file for SECONDS while `dlsys monitor FILE --follow
--json --interval 100ms` follows it. Prints one JSON object: lines written, the achieved write
rate, the CPU the monitor used, and the lag from the last write to the first snapshot that
counts every line. Usage: monitor_follow.py DLSYS LOG OUT_FILE RATE SECONDS"""
import json
import os
import subprocess
import sys
import threading
import time

dlsys, source, out, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
with open(source) as f:
    pool = [line for _, line in zip(range(200000), f)]
open(out, "w").close()
mon = subprocess.Popen([dlsys, "monitor", out, "--follow", "--json", "--interval", "100ms"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
snapshots = []  # (monotonic time, requests)


def pump():
    for line in mon.stdout:
        snapshots.append((time.monotonic(), json.loads(line)["requests"]))


reader = threading.Thread(target=pump, daemon=True)
reader.start()
chunk = max(1, rate // 100)
written = 0
start = time.monotonic()
with open(out, "a") as f:
    i = 0
    while time.monotonic() - start < seconds:
        lines = [pool[(i + k) % len(pool)] for k in range(chunk)]
        i += chunk
        f.write("".join(lines))
        f.flush()
        written += chunk
        # pace: chunk lines every 10 ms
        target = start + written / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
last_write = time.monotonic()
elapsed = last_write - start
deadline = last_write + 30
caught = None
while time.monotonic() < deadline and caught is None:
    for t, n in list(snapshots):
        if n >= written:
            caught = t
            break
    time.sleep(0.01)
ticks = os.sysconf("SC_CLK_TCK")
with open("/proc/%d/stat" % mon.pid) as f:
    fields = f.read().rsplit(")", 1)[1].split()
cpu_s = (int(fields[11]) + int(fields[12])) / ticks
mon.terminate()
mon.wait()
print(json.dumps({"written": written, "write_rate": round(written / elapsed),
                  "seconds": round(elapsed, 2), "monitor_cpu_s": cpu_s,
                  "monitor_cpu_pct": round(100 * cpu_s / elapsed, 1),
                  "lag_s": None if caught is None else round(max(0.0, caught - last_write), 3),
                  "caught_up": caught is not None}))
