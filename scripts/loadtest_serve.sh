#!/usr/bin/env bash
# Load test of `taiyi serve` on the full-size (random-weight) model, loopback only, bounded in
# requests and time (BENCHMARKS.md, "Serving"). Not run by CI.
#
#   /work/.venv/bin/python scripts/fullsize_text.py     # fixtures/full/text   (~1.3 GB)
#   /work/.venv/bin/python scripts/fullsize_vision.py   # fixtures/full/vision (~8 GB)
#   cargo build --release -p taiyi-cli
#   scripts/loadtest_serve.sh [SOAK_SECONDS]             # default 600 (the issue's 10 minutes)
#   scripts/loadtest_serve.sh table                      # throughput table (BENCHMARKS "Serving")
#
# `table`: texts/s and p50/p99 at 1, 4, 16, 64 clients (one mixed-length text per request),
# images/s at 1, 4, 16 clients, a repeated /classify (1 image, 20 labels x the zh templates)
# against one image's /v1/embeddings, then the offline rate of the same inputs: the CLI's
# embed-text / embed-image of N items minus the same command for 1 item (model loading and
# process start cancel out), and `taiyi bench --tower text --batch 1`.
#
# SERVE_CMD replaces the server command (its port must be $PORT), e.g. the library example:
#   SERVE_CMD="target/release/examples/serve_local fixtures/full/text fixtures/full/vision/open_clip_model.safetensors 18080"
#
# Prints one JSON line per phase and the server's RSS before and after the soak.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK="${1:-600}"
TABLE=0
CONCURRENT=32
# The table's 64 clients must all be admitted: a limit above them.
if [ "$SOAK" = table ]; then TABLE=1; SOAK=0; CONCURRENT=128; fi
PORT="${PORT:-18080}"
BIN="${TAIYI_BIN:-target/release/taiyi}"
TEXT="${TAIYI_TEXT_MODEL:-fixtures/full/text}"
VISION="${TAIYI_VISION_MODEL:-fixtures/full/vision/open_clip_model.safetensors}"
URL="http://127.0.0.1:$PORT"
LOAD="python3 scripts/loadtest_serve.py --url $URL"

SERVE_CMD="${SERVE_CMD:-$BIN serve --port $PORT --text-model $TEXT --vision-model $VISION --max-concurrent-requests $CONCURRENT}"
$SERVE_CMD >/tmp/taiyi-serve-load.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -sf "$URL/health" >/dev/null && break
  sleep 1
done
curl -sf "$URL/health" >/dev/null || { echo "server not ready"; cat /tmp/taiyi-serve-load.log; exit 1; }
rss() { awk '/VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$PID/status"; }
echo "{\"phase\": \"ready\", \"rss\": \"$(rss)\"}"

if [ "$TABLE" = 1 ]; then
  for c in 1 4 16 64; do
    $LOAD --kind text -c "$c" --requests $((c * 6 > 48 ? c * 6 : 48)) --duration 300
  done
  for c in 1 4 16; do
    $LOAD --kind image -c "$c" --requests $((c * 2 > 4 ? c * 2 : 4)) --duration 300
  done
  $LOAD --kind classify --labels 20 -c 1 --requests 1 --duration 300   # cold: 240 prompts
  $LOAD --kind classify --labels 20 -c 1 --requests 1 --duration 300   # again: cached
  $LOAD --kind image -c 1 --requests 2 --duration 300                  # the image alone
  curl -s "$URL/metrics" | grep -E '^taiyi_(label_cache|batch_items_(sum|count))'
  kill -TERM $PID; wait $PID || true
  trap - EXIT
  # Offline, the same inputs: (N items) - (1 item), one CLI call each.
  OFF=$(mktemp -d)
  python3 scripts/loadtest_serve.py --dump-texts "$OFF/texts.txt" --requests 192
  head -n 1 "$OFF/texts.txt" > "$OFF/one.txt"
  mkdir -p "$OFF/img16" "$OFF/img1"
  for i in $(seq 16); do cp examples/data/chelsea_cat.png "$OFF/img16/cat$i.png"; done
  cp examples/data/chelsea_cat.png "$OFF/img1/cat.png"
  secs() { local t0; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $t0" | bc; }
  T="--text-model $TEXT --mode masked"
  t192=$(secs "$BIN" embed-text $T --texts-file "$OFF/texts.txt" --out "$OFF/t.npy")
  t1=$(secs "$BIN" embed-text $T --texts-file "$OFF/one.txt" --out "$OFF/t1.npy")
  echo "{\"offline\": \"embed-text masked\", \"texts\": 192, \"s\": $t192, \"one_text_s\": $t1, \"texts_per_s\": $(echo "191 / ($t192 - $t1)" | bc -l)}"
  V="--vision-model $VISION"
  i16=$(secs "$BIN" embed-image $V --images-dir "$OFF/img16" --out "$OFF/i.npy")
  i1=$(secs "$BIN" embed-image $V --images-dir "$OFF/img1" --out "$OFF/i1.npy")
  echo "{\"offline\": \"embed-image\", \"images\": 16, \"s\": $i16, \"one_image_s\": $i1, \"images_per_s\": $(echo "15 / ($i16 - $i1)" | bc -l)}"
  "$BIN" bench --tower text --batch 1 --seq 20 --iters 10 --json
  rm -rf "$OFF"
  exit 0
fi

for c in 1 8 32; do
  $LOAD --kind text -c "$c" --requests $((c * 8 > 16 ? c * 8 : 16)) --duration 120
done
for c in 1 8 32; do
  $LOAD --kind image -c "$c" --requests $((c > 4 ? c : 4)) --duration 120
done
# Overload: 96 clients against a limit of 32 concurrent requests (the default is 64; the
# example serve_local keeps it: run it with 160 clients): only 200s and 429s.
$LOAD --kind text -c "${OVERLOAD:-96}" --requests 400 --duration 60

echo "{\"phase\": \"soak-start\", \"rss\": \"$(rss)\"}"
$LOAD --kind text -c 8 --requests 1000000 --duration "$SOAK" --texts-per-request 4
echo "{\"phase\": \"soak-end\", \"rss\": \"$(rss)\"}"

kill -TERM $PID
wait $PID
echo "{\"phase\": \"sigterm\", \"exit\": $?}"
trap - EXIT
