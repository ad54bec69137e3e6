#!/usr/bin/env bash
# Try the Kamailio CDR config end to end on 127.0.0.1, without a cdrchain node:
#   HTTP sink (python3) <- kamailio (kamailio.cfg) <- sipp UACs, kamailio -> sipp UASs
# Drives 6 calls (answered 2 s, answered 4 s, 486, 404, 480, caller CANCEL),
# waits until the sink has 6 JSON documents, prints them, checks them, and
# stops everything it started.
#
# Usage: scripts/kamailio/try.sh [--fail-first N] [--fail-code C] [--sink-delay S]
#                                 [--token T] [--keep]
#   --fail-first N  the sink answers 503 to the first N POSTs (retry test)
#   --fail-code C   answer C instead of 503 to those N POSTs (e.g. 401, 500)
#   --sink-delay S  start the sink S seconds after the calls (node down test:
#                   connection refused until then)
#   --token T       start kamailio with CDR_TOKEN="T"; the sink records the
#                   Authorization header it gets
#   --keep          keep the temp dir (logs, sink files) after the run
# Needs: kamailio 5.6 (+ acc_json, http_client modules), sipp, python3.
# Exit status 0 when exactly 6 documents with the expected codes arrived.

set -euo pipefail

FAIL_FIRST=0
FAIL_CODE=503
SINK_DELAY=0
TOKEN=""
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
		--fail-first) FAIL_FIRST="$2"; shift 2 ;;
		--fail-code) FAIL_CODE="$2"; shift 2 ;;
		--sink-delay) SINK_DELAY="$2"; shift 2 ;;
		--token) TOKEN="$2"; shift 2 ;;
		--keep) KEEP=1; shift ;;
		-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
		*) echo "unknown option: $1" >&2; exit 2 ;;
	esac
done

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CFG="$HERE/kamailio.cfg"
SIPP_DIR="$ROOT/tests/sipp"
PY="$(command -v python3)"

for bin in kamailio sipp "$PY"; do
	command -v "$bin" >/dev/null || { echo "missing: $bin" >&2; exit 2; }
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cdrchain-kamailio.XXXXXX")"
mkdir -p "$TMP/run" "$TMP/sipp"
PIDS=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# stop in reverse start order; only the processes started here
	for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
		kill "${PIDS[$i]}" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
		echo "logs kept in $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[try.sh %s] %s\n' "$(date +%T)" "$*"; }

# --- free ports -------------------------------------------------------------
# $1 = udp|tcp, $2 = how many consecutive ports; prints the first one
free_ports() {
	"$PY" - "$1" "$2" <<'EOF'
import random, socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
count = int(sys.argv[2])
for _ in range(500):
    base = random.randint(20000, 60000 - count)
    socks = []
    try:
        for p in range(base, base + count):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(base)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit("no free ports")
EOF
}

# wait until something is bound on udp/tcp 127.0.0.1:port (bind test), $3 = timeout s
wait_bound() {
	local kind="$1" port="$2" secs="${3:-10}"
	"$PY" - "$kind" "$port" "$secs" <<'EOF' || { echo "nothing listening on $1 127.0.0.1:$2 after ${3:-10}s" >&2; return 1; }
import socket, sys, time
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
port, deadline = int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < deadline:
    s = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.settimeout(0.5)
            s.connect(("127.0.0.1", port))
            sys.exit(0)
        s.bind(("127.0.0.1", port))  # still free: not up yet
    except OSError:
        if kind == socket.SOCK_DGRAM:
            sys.exit(0)  # bind refused: someone is bound
    finally:
        s.close()
    time.sleep(0.1)
sys.exit(1)
EOF
}

SIP_PORT="$(free_ports udp 1)"
UAS_BASE="$(free_ports udp 5)"
while [ "$SIP_PORT" -ge "$UAS_BASE" ] && [ "$SIP_PORT" -lt $((UAS_BASE + 5)) ]; do UAS_BASE="$(free_ports udp 5)"; done
SINK_PORT="$(free_ports tcp 1)"
DOCS="$TMP/docs.jsonl"
: > "$DOCS"

# --- HTTP sink ----------------------------------------------------------------
cat > "$TMP/sink.py" <<'EOF'
import http.server, json, sys, threading, time

port, docs_path, fail_first, fail_code = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lock = threading.Lock()
state = {"posts": 0}

class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            state["posts"] += 1
            n = state["posts"]
            ok = n > fail_first
            if ok:
                with open(docs_path, "ab") as f:
                    f.write(body.replace(b"\n", b" ") + b"\n")
        code = 200 if ok else fail_code
        sys.stdout.write("%s POST #%d %s Content-Type=%r Authorization=%r -> %d %s\n" % (
            time.strftime("%H:%M:%S"), n, self.path, self.headers.get("Content-Type"),
            self.headers.get("Authorization"), code, body.decode("utf-8", "replace")))
        sys.stdout.flush()
        answer = b'{"ok":true}\n' if ok else b'{"ok":false,"error":"try later"}\n'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Sink).serve_forever()
EOF

start_sink() {
	"$PY" -u "$TMP/sink.py" "$SINK_PORT" "$DOCS" "$FAIL_FIRST" "$FAIL_CODE" > "$TMP/sink.log" 2>&1 &
	PIDS+=($!)
	wait_bound tcp "$SINK_PORT" 10
	log "sink up on http://127.0.0.1:$SINK_PORT ($FAIL_CODE for the first $FAIL_FIRST POSTs)"
}

# --- sipp UAS instances: answer busy nobody away ring = base+0..4 ----------------
UAS_FILES=(uas-answer.xml uas-486.xml uas-404.xml uas-480.xml uas-ring.xml)
for i in 0 1 2 3 4; do
	port=$((UAS_BASE + i))
	f="${UAS_FILES[$i]}"
	( cd "$TMP/sipp" && exec sipp -sf "$SIPP_DIR/$f" -i 127.0.0.1 -p "$port" -nostdin \
		-trace_err -error_file "$TMP/sipp/uas-$port.err" > "$TMP/sipp/uas-$port.out" 2>&1 ) &
	PIDS+=($!)
done
for i in 0 1 2 3 4; do wait_bound udp $((UAS_BASE + i)) 10; done
log "sipp UAS up on udp 127.0.0.1:$UAS_BASE..$((UAS_BASE + 4))"

[ "$SINK_DELAY" = 0 ] && start_sink

# --- kamailio -------------------------------------------------------------------
KAM_ARGS=(-f "$CFG" -DD -E -w "$TMP" -Y "$TMP/run" -P "$TMP/kamailio.pid"
	-m 64 -M 8
	-A "SIP_PORT=$SIP_PORT"
	-A "CDR_URL=\"http://127.0.0.1:$SINK_PORT/ingest/kamailio\""
	-A "UAS_BASE_PORT=$UAS_BASE"
	-A "SYSTEM_ID=\"kamailio-try\"")
[ -n "$TOKEN" ] && KAM_ARGS+=(-A "CDR_TOKEN=\"$TOKEN\"")
log "kamailio ${KAM_ARGS[*]}"
kamailio "${KAM_ARGS[@]}" > "$TMP/kamailio.log" 2>&1 &
KAM_PID=$!
PIDS+=($KAM_PID)
if ! wait_bound udp "$SIP_PORT" 15; then
	tail -30 "$TMP/kamailio.log" >&2
	exit 1
fi
kill -0 "$KAM_PID" || { tail -30 "$TMP/kamailio.log" >&2; exit 1; }
log "kamailio up on udp 127.0.0.1:$SIP_PORT (pid $KAM_PID)"

# --- calls ------------------------------------------------------------------------
CALL_PIDS=()
uac() { # name scenario user extra-args...
	local name="$1" sf="$2" user="$3"
	shift 3
	( cd "$TMP/sipp" && exec sipp -sf "$SIPP_DIR/$sf" -s "$user" -m 1 -i 127.0.0.1 -nostdin \
		-timeout 30 -timeout_error -trace_err -error_file "$TMP/sipp/uac-$name.err" \
		"$@" "127.0.0.1:$SIP_PORT" > "$TMP/sipp/uac-$name.out" 2>&1 ) &
	CALL_PIDS+=($!)
	PIDS+=($!)
	log "call $name: sipp -sf tests/sipp/$sf -s $user -m 1 -i 127.0.0.1 $* 127.0.0.1:$SIP_PORT"
}
uac answered-2s uac-call.xml answer -d 2000
uac answered-4s uac-call.xml answer -d 4000
uac busy-486 uac-fail.xml busy
uac notfound-404 uac-fail.xml nobody
uac away-480 uac-fail.xml away
uac cancel uac-cancel.xml ring

if [ "$SINK_DELAY" != 0 ]; then
	sleep "$SINK_DELAY"
	start_sink
fi

FAILED=0
for pid in "${CALL_PIDS[@]}"; do
	if ! wait "$pid"; then FAILED=$((FAILED + 1)); fi
done
if [ "$FAILED" != 0 ]; then
	log "$FAILED sipp UAC(s) failed; see $TMP/sipp/*.err"
	for f in "$TMP"/sipp/uac-*.err; do [ -s "$f" ] && { echo "== $f"; tail -20 "$f"; }; done
	exit 1
fi
log "all 6 sipp UACs finished OK"

# --- wait for the 6 documents, then a little longer to catch duplicates ----------
for _ in $(seq 300); do
	[ "$(wc -l < "$DOCS")" -ge 6 ] && break
	sleep 0.1
done
sleep 3
N="$(wc -l < "$DOCS")"
log "sink has $N documents; sink log:"
cat "$TMP/sink.log"
echo "---- kamailio CDR sender log ----"
grep -E 'cdrchain:|ERROR' "$TMP/kamailio.log" | sed -e 's/: {.*/: {...}/' || true
echo "---- documents ----"
cat "$DOCS"

"$PY" - "$DOCS" <<'EOF'
import collections, json, sys
docs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
need = ["start_time", "end_time", "duration", "callid", "from_tag", "caller", "callee",
        "sip_code", "sip_reason", "answer_time", "reason", "system_id",
        "caller_operator", "callee_operator"]
bad = []
for d in docs:
    miss = [k for k in need if k not in d]
    if miss:
        bad.append("%s: missing %s" % (d.get("callid"), miss))
keys = collections.Counter((d.get("callid"), d.get("from_tag")) for d in docs)
dups = [k for k, n in keys.items() if n > 1]
codes = sorted(d.get("sip_code", "") for d in docs)
want = sorted(["200", "200", "486", "404", "480", "487"])
print("---- check ----")
for d in sorted(docs, key=lambda d: float(d["start_time"])):
    st, et = float(d["start_time"]), float(d["end_time"])
    at = float(d["answer_time"]) if d.get("answer_time") else None
    ft = float(d["final_time"]) if d.get("final_time") else None
    print("%s %-26s duration=%-6s end-start=%.3f answer-start=%s end-answer=%s final-start=%s reason=%r" % (
        d["sip_code"], d["callee"], d["duration"], et - st,
        "%.3f" % (at - st) if at else "-", "%.3f" % (et - at) if at else "-",
        "%.3f" % (ft - st) if ft else "-", d["reason"]))
if len(docs) != 6: bad.append("expected 6 documents, got %d" % len(docs))
if dups: bad.append("duplicates: %s" % dups)
if codes != want: bad.append("sip codes %s, expected %s" % (codes, want))
if bad:
    print("FAIL:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("OK: 6 documents, one per call, codes %s" % " ".join(codes))
EOF
