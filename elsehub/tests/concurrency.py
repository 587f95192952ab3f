"""Fire API requests from several threads at once, for race tests on PostgreSQL."""

import threading

from django.db import connection


def send_at_once(requests: list[tuple]) -> list[int]:
    """Send ``(client, method, url, payload)`` requests from separate threads (each with its own
    database connection), released together by a barrier; returns the sorted status codes."""
    barrier = threading.Barrier(len(requests))
    statuses: list[int] = []

    def send(client, method, url, payload):
        try:
            barrier.wait()
            statuses.append(getattr(client, method)(url, payload, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(statuses)
