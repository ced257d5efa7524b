#!/usr/bin/env python3
"""Writes N dlsys serve access records (docs/logging.md) as JSON lines, for scripts/bench/monitor.sh:
two model versions (stable 90%, canary 10%), 1% 503s, log-normal latencies, 10k records/s.
Usage: monitor_gen.py N OUT"""
import random
import sys
import time

n, out = int(sys.argv[1]), sys.argv[2]
random.seed(7)
base = 1796150603  # 2026-12-01T18:43:23Z
with open(out, "w") as f:
    lines = []
    for i in range(n):
        t = base + i // 10000
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % (i % 10000 * 100)
        version = "1.1.0" if i % 10 == 0 else "1.0.0"
        status = 503 if random.random() < 0.01 else 200
        lat = random.lognormvariate(-1.5, 0.5)
        lines.append(
            '{"@timestamp":"%s","log.level":"%s","message":"POST /v2/models/mlp16/infer %d",'
            '"ecs.version":"8.11.0","severity":%d,"event":"serve.request","service":"dlsys-serve",'
            '"host":"bench","pid":4242,"request_id":"%016x","http.request.method":"POST",'
            '"url.path":"/v2/models/mlp16/infer","client.address":"127.0.0.1","client.port":%d,'
            '"status":%d,"latency_ms":%.6f,"http.request.body.bytes":231,'
            '"http.response.body.bytes":140,"model":"mlp16","model_version":"%s",'
            '"queue_ms":%.6f,"infer_ms":%.6f,"batch_size":%d}\n'
            % (ts, "INFO" if status == 200 else "ERROR", status, 9 if status == 200 else 17,
               (i * 2654435761) % (1 << 64), 30000 + i % 1000, status, lat, version, lat / 4,
               lat / 3, 1 + i % 8))
        if len(lines) == 10000:
            f.write("".join(lines))
            lines = []
    f.write("".join(lines))
