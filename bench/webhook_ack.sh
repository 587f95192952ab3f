#!/usr/bin/env bash
# Webhook acknowledgement on PostgreSQL: a constant 200 req/s for 60 s against two gunicorn
# processes, then the highest rate they sustain (p99 <= 250 ms, no errors). Run by hand:
#   bash bench/webhook_ack.sh [rate] [duration]
# Needs PostgreSQL and Redis on 127.0.0.1. No Celery worker runs: this measures the answer only
# (verify, store the WebhookEvent, enqueue), which is what providers wait for.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-200}
duration=${2:-60}
source bench/common.sh
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
url="http://127.0.0.1:$port/api/webhooks/evolution"
echo "== constant $rate req/s for ${duration}s"
.venv/bin/python bench/loadgen.py --url "$url" --header "x-elsehub-secret: $secret" --rate "$rate" --duration "$duration"
echo "== maximum sustained rate (20 s steps)"
.venv/bin/python bench/loadgen.py --url "$url" --header "x-elsehub-secret: $secret" --rate 300 --duration 20 --find-max
