#!/usr/bin/env bash
# End-to-end ingestion under live load on PostgreSQL: ONE Celery worker runs while Evolution text
# webhooks arrive at a constant rate (two gunicorn processes answer them, all on this machine).
# Prints the acknowledgement figures, then how long each message took from its webhook being
# stored to the message being stored (median, p99, max) and the rate they were stored at.
# Run by hand:  bash bench/ingest_live.sh [rate] [seconds] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-300}
seconds=${2:-30}
concurrency=${3:-2}
worker=""
source bench/common.sh
trap 'kill $server $worker 2>/dev/null; wait 2>/dev/null' EXIT
.venv/bin/celery -A elsehub worker -l WARNING --concurrency "$concurrency" -Q celery &
worker=$!
sleep 5  # the worker is up and has declared its queue
echo "== $rate webhooks/s for $seconds s while the worker runs"
.venv/bin/python bench/loadgen.py --url "http://127.0.0.1:$port/api/webhooks/evolution" \
  --header "x-elsehub-secret: $secret" --rate "$rate" --duration "$seconds"
.venv/bin/python manage.py shell -c "
import time
from django.db import connection
from webhooks.models import WebhookEvent
from conversations.models import Message
expected = WebhookEvent.objects.filter(service_instance__remote_id='bench').count()
deadline = time.time() + 120
while Message.objects.filter(service_instance__remote_id='bench').count() < expected and time.time() < deadline:
    time.sleep(0.2)
with connection.cursor() as cursor:
    cursor.execute('''
        SELECT count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
               max(lag),
               count(*) / extract(epoch FROM max(m_created) - min(e_received))
        FROM (
            SELECT extract(epoch FROM m.created_at - e.received_at) * 1000 AS lag,
                   m.created_at AS m_created, e.received_at AS e_received
            FROM webhooks_webhookevent e
            JOIN instances_serviceinstance i ON i.id = e.service_instance_id AND i.remote_id = 'bench'
            JOIN conversations_message m
              ON m.service_instance_id = i.id AND m.external_id = e.payload->'data'->'key'->>'id'
        ) lags''')
    stored, median, p99, worst, per_second = cursor.fetchone()
print(f'{stored} of {expected} stored; webhook stored -> message stored: median {median:.0f} ms, '
      f'p99 {p99:.0f} ms, max {worst:.0f} ms; {per_second:.0f} messages/s from first webhook to last message')
"
