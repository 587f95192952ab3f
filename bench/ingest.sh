#!/usr/bin/env bash
# End-to-end ingestion on PostgreSQL: N Evolution text webhooks are acknowledged by two gunicorn
# processes while no worker runs, then ONE Celery worker starts and the clock runs until every
# message is stored. Prints messages per second. Run by hand:  bash bench/ingest.sh [N] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
concurrency=${2:-2}
worker=""
source bench/common.sh
trap 'kill $server $worker 2>/dev/null; wait 2>/dev/null' EXIT
echo "== acknowledging $count webhooks (no worker yet)"
.venv/bin/python bench/loadgen.py --url "http://127.0.0.1:$port/api/webhooks/evolution" \
  --header "x-elsehub-secret: $secret" --rate 400 --duration "$(python3 -c "print($count/400)")"
echo "== one worker (concurrency $concurrency) drains the queue"
start=$(date +%s.%N)
.venv/bin/celery -A elsehub worker -l WARNING --concurrency "$concurrency" -Q celery &
worker=$!
.venv/bin/python manage.py shell -c "
import time
from conversations.models import Message
start = float('$start')
first = None
while True:
    stored = Message.objects.filter(service_instance__remote_id='bench').count()
    if stored and first is None:
        first = (time.time(), stored)
    if stored >= $count:
        break
    time.sleep(0.05)
end = time.time()
steady = (stored - first[1]) / (end - first[0]) if end > first[0] else float('nan')
print(f'{stored} messages stored in {end - start:.1f} s: {stored / (end - start):.0f} messages/s with the worker start, '
      f'{steady:.0f} messages/s from the first stored message on')
"
