#!/usr/bin/env python3
"""A large /classify in front of a one-text /embed (issue 25, BENCHMARKS.md "A large request in
front of a small one"). Start a server first, e.g. on the tiny fixtures:

    taiyi serve --text-model fixtures/text/tiny \
        --vision-model fixtures/vision/open_clip_model.safetensors --vision-arch tiny --port 18777

then: scripts/serve_starvation.py 18777 341   (341 labels x 12 zh templates = 4092 prompts)

Prints (status, seconds) of a lone one-text /embed, then of the /classify and of a one-text
/embed sent 50 ms after it. Standard library only."""
import base64
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def post(port, path, body):
    t = time.time()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            code = r.status
            r.read()
    except urllib.error.HTTPError as e:
        code = e.code
        e.read()
    return code, round(time.time() - t, 4)


def main():
    port, n_labels = sys.argv[1], int(sys.argv[2])
    with open("fixtures/vision/gradient_300x200.png", "rb") as f:
        png = base64.b64encode(f.read()).decode()
    labels = [f"标签{i}号的猫" for i in range(n_labels)]
    print("one text alone:", post(port, "/embed", {"texts": ["一只猫"]}))
    res = {}

    def big():
        res["classify"] = post(
            port, "/classify", {"images": [png], "labels": labels, "templates": "zh"}
        )

    th = threading.Thread(target=big)
    th.start()
    time.sleep(0.05)
    res["one text behind it"] = post(port, "/embed", {"texts": ["一只猫"]})
    th.join()
    print(f"prompts {n_labels * 12}:", res)


if __name__ == "__main__":
    main()
