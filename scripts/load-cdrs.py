#!/usr/bin/env python3
# Loads N synthetic CDRs (alice -> bob, one every 250 ms of call time) into a node through
# POST /ingest/cdrs: NDJSON bodies of BATCH records, THREADS requests at a time, honouring 503 +
# Retry-After. Used by scripts/portal-first-view.sh to fill a dev node.
#   scripts/load-cdrs.py URL N
import sys, threading, urllib.error, urllib.request, time
URL, N, BATCH, THREADS = sys.argv[1], int(sys.argv[2]), 10_000, 4
BASE = 1_793_000_000_000
def body(first):
    lines = []
    for n in range(first, min(first + BATCH, N)):
        start = BASE + n * 250
        lines.append('{"call_id":"fv-%d@sbc.example","caller":"+4420794%05d","callee":"+3491%07d","caller_operator":"alice","callee_operator":"bob","start":%d,"answer":%d,"end":%d,"disposition":"answered"}' % (n, n % 100000, n % 10000000, start, start + 2000, start + 62000 + (n % 300) * 1000))
    return ("\n".join(lines) + "\n").encode()
next_first = [0]; lock = threading.Lock(); errors = []
def worker():
    while True:
        with lock:
            first = next_first[0]
            if first >= N: return
            next_first[0] += BATCH
        data = body(first)
        while True:
            req = urllib.request.Request(URL + "/ingest/cdrs", data=data, headers={"content-type": "application/x-ndjson"})
            try:
                urllib.request.urlopen(req, timeout=120).read(); break
            except urllib.error.HTTPError as e:
                if e.code == 503: time.sleep(float(e.headers.get("Retry-After", "1"))); continue
                errors.append(f"{e.code} {e.read()[:200]}"); return
t = time.time()
threads = [threading.Thread(target=worker) for _ in range(THREADS)]
[x.start() for x in threads]; [x.join() for x in threads]
print("loaded", N, "in", round(time.time() - t, 1), "s; errors:", errors[:3])
