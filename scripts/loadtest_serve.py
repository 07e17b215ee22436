#!/usr/bin/env python3
"""Bounded loopback load generator for `taiyi serve` (stdlib only; no third-party packages).

Sends POST /v1/embeddings requests (texts, or one image each) from N keep-alive connections
until --requests have been sent or --duration seconds have passed, whichever comes first, then
prints one JSON line: requests, status counts, items/s, latency p50/p99 (ms).

    python3 scripts/loadtest_serve.py --url http://127.0.0.1:8080 --kind text -c 8 --requests 200
    python3 scripts/loadtest_serve.py --kind image --image examples/data/chelsea_cat.png -c 1 --requests 10
    python3 scripts/loadtest_serve.py --kind classify --labels 20 -c 1 --requests 1   # /classify, zh templates
    python3 scripts/loadtest_serve.py --dump-texts texts.txt --requests 96   # the texts requests 0..95 send

Texts: request i sends text_batch(i, n), Chinese phrases of 3 to 40 characters (deterministic),
so a run's texts can be embedded offline (`--dump-texts`, then `taiyi embed-text --texts-file`)
for the same-inputs comparison.

Only loopback addresses are accepted (the load test must not leave the machine).
"""

import argparse
import base64
import http.client
import json
import threading
import time
import urllib.parse

LABELS = ["猫", "狗", "老虎", "熊猫", "兔子", "马", "大象", "长颈鹿", "狮子", "猴子", "汽车", "自行车",
          "飞机", "轮船", "火车", "房子", "桥", "山", "海滩", "森林", "花", "蛋糕", "面条", "书"]

WORDS = ["一只猫", "一只狗", "海边的日落", "两只老虎", "城市夜景", "雪山", "红色的花", "一碗面条",
         "下雨的街道", "古老的寺庙", "孩子们在踢足球", "一辆自行车"]


def text_batch(i, per_request):
    # Different texts per request (lengths 8-40 characters), deterministic.
    return ["，".join(WORDS[(i * 7 + k * 3 + j) % len(WORDS)] for j in range(2 + (i + k) % 6))
            for k in range(per_request)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--kind", choices=["text", "image", "classify"], default="text")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=100, help="stop after this many requests")
    ap.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds")
    ap.add_argument("--texts-per-request", type=int, default=1)
    ap.add_argument("--image", default="examples/data/chelsea_cat.png")
    ap.add_argument("--api-key")
    ap.add_argument("--labels", type=int, default=20, help="labels per /classify (--kind classify)")
    ap.add_argument("--dump-texts", metavar="FILE",
                    help="write the texts of requests 0..--requests-1, one per line, and exit")
    args = ap.parse_args()
    if args.dump_texts:
        with open(args.dump_texts, "w", encoding="utf-8") as f:
            for i in range(args.requests):
                for t in text_batch(i, args.texts_per_request):
                    f.write(t + "\n")
        return

    u = urllib.parse.urlparse(args.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only: --url must be http://127.0.0.1:PORT")
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    image_uri = None
    if args.kind in ("image", "classify"):
        with open(args.image, "rb") as f:
            image_uri = "data:image/png;base64," + base64.b64encode(f.read()).decode()

    lock = threading.Lock()
    state = {"next": 0}
    latencies, statuses = [], {}
    items = {"n": 0}
    deadline = time.monotonic() + args.duration

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
        while True:
            with lock:
                i = state["next"]
                if i >= args.requests or time.monotonic() > deadline:
                    break
                state["next"] += 1
            path = "/v1/embeddings"
            if args.kind == "text":
                body = {"input": text_batch(i, args.texts_per_request)}
                n = args.texts_per_request
            elif args.kind == "classify":
                path = "/classify"
                body = {"images": [image_uri], "labels": LABELS[:args.labels], "templates": "zh"}
                n = 1
            else:
                body = {"input": [image_uri], "modality": "image"}
                n = 1
            data = json.dumps(body, ensure_ascii=False).encode()
            t0 = time.monotonic()
            try:
                conn.request("POST", path, body=data, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                status = "error"
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
            dt = time.monotonic() - t0
            with lock:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    latencies.append(dt)
                    items["n"] += n
        conn.close()

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    latencies.sort()

    def pct(p):
        if not latencies:
            return None
        return round(1e3 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    print(json.dumps({
        "kind": args.kind, "concurrency": args.concurrency, "requests": state["next"],
        "statuses": statuses, "wall_s": round(wall, 2),
        "items_per_s": round(items["n"] / wall, 2) if wall > 0 else None,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99),
    }))


if __name__ == "__main__":
    main()
