"""Constant-rate HTTP load for Elsehub's webhook endpoints (run by hand; standard library only).

Request ``i`` is due at ``start + i / rate``; its latency is measured from that due time, so a
slow server cannot hide its queueing (no coordinated omission). Each thread keeps one
keep-alive connection.

    python bench/loadgen.py --url http://127.0.0.1:8010/api/webhooks/evolution \
        --header "x-elsehub-secret: ..." --instance bench --rate 200 --duration 60
"""

import argparse
import http.client
import json
import queue
import statistics
import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlparse

CUSTOMERS = 500


def evolution_body(instance: str, n: int) -> bytes:
    message_id = "3EB0" + uuid.uuid4().hex[:18].upper()
    phone = f"55149{n % CUSTOMERS + 10000000:08d}"  # a few hundred customers writing again and again
    return json.dumps(
        {
            "event": "messages.upsert",
            "instance": instance,
            "data": {
                "key": {"remoteJid": f"{phone}@s.whatsapp.net", "fromMe": False, "id": message_id},
                "pushName": f"Cliente {n}",
                "status": "DELIVERY_ACK",
                "message": {"conversation": f"Olá, mensagem de carga {n}"},
                "messageType": "conversation",
                "messageTimestamp": int(time.time()),
                "instanceId": "00000000-0000-0000-0000-000000000000",
                "source": "android",
            },
            "destination": "http://127.0.0.1/api/webhooks/evolution",
            "date_time": "2026-11-23T12:00:00.000Z",
            "sender": "5514900000001@s.whatsapp.net",
            "server_url": "http://127.0.0.1:8081",
            "apikey": None,
        }
    ).encode()


def run(url: str, headers: dict[str, str], instance: str, rate: float, duration: float, threads: int) -> dict:
    target = urlparse(url)
    total = int(rate * duration)
    due: queue.Queue = queue.Queue()
    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def worker() -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        local: list[tuple[float, int]] = []
        while True:
            item = due.get()
            if item is None:
                break
            n, due_at = item
            delay = due_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = evolution_body(instance, n)
            try:
                connection.request(
                    "POST", target.path, body=body, headers={"Content-Type": "application/json", **headers}
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
                status = 0
            local.append((time.perf_counter() - due_at, status))
        with lock:
            results.extend(local)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for n in range(total):
        due.put((n, start + n / rate))
    for _ in pool:
        due.put(None)
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    latencies = sorted(latency * 1000 for latency, _status in results)
    statuses = Counter(status for _latency, status in results)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "requests": len(results),
        "rate_target": rate,
        "rate_achieved": round(len(results) / elapsed, 1),
        "median_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(pct(90), 1),
        "p99_ms": round(pct(99), 1),
        "max_ms": round(latencies[-1], 1),
        "statuses": dict(statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    parser.add_argument("--instance", default="bench")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--find-max", action="store_true", help="step the rate up until p99 > 250 ms or errors")
    args = parser.parse_args()
    headers = dict(item.split(":", 1) for item in args.header)
    headers = {key.strip(): value.strip() for key, value in headers.items()}
    if not args.find_max:
        print(json.dumps(run(args.url, headers, args.instance, args.rate, args.duration, args.threads)))
        return
    rate = args.rate
    best = None
    while True:
        result = run(args.url, headers, args.instance, rate, args.duration, args.threads)
        print(json.dumps(result), flush=True)
        ok = result["p99_ms"] <= 250 and set(result["statuses"]) == {200} and result["rate_achieved"] >= 0.95 * rate
        if not ok:
            break
        best = rate
        rate *= 1.25
    print(json.dumps({"max_sustained_rate": best}))


if __name__ == "__main__":
    main()
