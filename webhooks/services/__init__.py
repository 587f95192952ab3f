"""The webhook inbox: store first, answer, then process (DESIGN.md, "How data flows").

``receive_*`` run inside the provider's request and only write ``WebhookEvent`` rows, each with
the partition of its chat. After commit a drain task is scheduled for each number and partition
that got new rows (one at a time while it waits in the queue); ``drain_events`` applies the
PENDING rows of its partition in arrival order, a batch per transaction (``process_batch``), and
falls back to one row per transaction (``process_event``) when a batch fails. Every step may run
twice: an identical re-delivery hits the unique dedupe key, a processed row is skipped, and the
domain writes behind it are idempotent. ``sweep_pending_events`` drains again whatever a lost
task left behind.
"""

from webhooks.services.processing import (
    NOTHING_TO_APPLY,
    backoff,
    drain_events,
    max_attempts,
    process_batch,
    process_event,
)
from webhooks.services.receiving import (
    MALFORMED_BODY,
    NO_INSTANCE,
    Incoming,
    dedupe_key,
    partition_of,
    receive_event,
    receive_events,
    receive_evolution,
    receive_meta,
)
from webhooks.services.scheduling import schedule_drains
from webhooks.services.sweeping import replay_events, sweep_pending_events

__all__ = [
    "MALFORMED_BODY",
    "NOTHING_TO_APPLY",
    "NO_INSTANCE",
    "Incoming",
    "backoff",
    "dedupe_key",
    "drain_events",
    "max_attempts",
    "partition_of",
    "process_batch",
    "process_event",
    "receive_event",
    "receive_events",
    "receive_evolution",
    "receive_meta",
    "replay_events",
    "schedule_drains",
    "sweep_pending_events",
]
