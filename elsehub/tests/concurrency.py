"""Run calls from several threads at once, for race tests on PostgreSQL."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_at_once(calls: list[Callable[[], Any]], *, timeout: float = 60) -> list[Any]:
    """Run each call in its own thread (and database connection), all released together by a
    barrier; returns their results in completion order and re-raises the first failure."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = []
    failures: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results.append(call())
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if failures:
        raise failures[0]
    return results


def send_at_once(requests: list[tuple]) -> list[int]:
    """Send ``(client, method, url, payload)`` requests at once; returns the sorted status codes."""
    return sorted(
        run_at_once(
            [
                lambda client=client, method=method, url=url, payload=payload: (
                    getattr(client, method)(url, payload, format="json").status_code
                )
                for client, method, url, payload in requests
            ]
        )
    )
