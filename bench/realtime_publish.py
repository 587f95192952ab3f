"""Benchmark of the realtime publisher: how fast one process's events reach Redis.

Run by hand, never by the test suite:

    DEBUG=true REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/realtime_publish.py [events] [chats]

Hands ``events`` events to the publisher as ingestion does (each to the supervisors, its
conversation's group and its number's queue; the conversations cycle through ``chats``), then
waits for the flush, and prints events per second. Nobody listens, as in the ingestion benchmarks:
what is measured is the publishing process's side. The Redis database is flushed first.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elsehub.settings.base")

import django

django.setup()

import redis  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels_redis.core import RedisChannelLayer  # noqa: E402

from elsehub import realtime  # noqa: E402


def main() -> int:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    chats = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    layer = get_channel_layer()
    if not isinstance(layer, RedisChannelLayer):
        print("set REDIS_URL: the publisher only queues for Redis", file=sys.stderr)
        return 2
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    start = time.perf_counter()
    for n in range(events):
        groups = (realtime.SUPERVISORS, realtime.conversation_group(n % chats), realtime.queue_group("bench"))
        realtime._send("message:new", {"n": n, "content": "Oi, preciso de ajuda com o meu pedido"}, groups)
    handed = time.perf_counter() - start
    if not realtime.flush(timeout=600):
        print("the flush timed out", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    print(
        f"{events} events to {chats} chats: handed over in {handed:.2f} s, all sent after {elapsed:.2f} s: "
        f"{events / elapsed:.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
