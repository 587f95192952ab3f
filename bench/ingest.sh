#!/usr/bin/env bash
# End-to-end ingestion on PostgreSQL: N Evolution text webhooks are acknowledged by two gunicorn
# processes while no worker runs, then ONE Celery worker starts and the clock runs until every
# message is stored. Prints messages per second. Run by hand:  bash bench/ingest.sh [N] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
concurrency=${2:-2}
port=${BENCH_PORT:-8010}
export DEBUG=false SECRET_KEY=bench-secret-key-bench-secret-key-bench ALLOWED_HOSTS=127.0.0.1 LOG_LEVEL=WARNING
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/elsehub_bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
createdb -h 127.0.0.1 -U postgres elsehub_bench 2>/dev/null || true
.venv/bin/python manage.py migrate -v 0
secret=$(.venv/bin/python manage.py shell --no-imports -c '
import secrets
from conversations.models import Conversation, Message
from instances.models import ServiceInstance
from webhooks.models import WebhookEvent
Message.objects.filter(service_instance__remote_id="bench").delete()
Conversation.objects.filter(service_instance__remote_id="bench").delete()
WebhookEvent.objects.filter(service_instance__remote_id="bench").delete()
instance = ServiceInstance.objects.filter(remote_id="bench").first() or ServiceInstance(
    name="Bench", phone="5514900000009", provider="EVOLUTION_API")
instance.set_credentials({"serverUrl": "http://127.0.0.1:9", "apiToken": "bench-token", "instanceName": "bench"})
secret = secrets.token_urlsafe(32)
instance.set_webhook_secret(secret)
instance.save()
print(secret)
' | tail -n 1)
redis-cli -n "${REDIS_URL##*/}" flushdb >/dev/null
.venv/bin/gunicorn elsehub.wsgi -w 2 -b "127.0.0.1:$port" --log-level warning &
server=$!
worker=""
trap 'kill $server $worker 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.2; done
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
while True:
    stored = Message.objects.filter(service_instance__remote_id='bench').count()
    if stored >= $count:
        break
    time.sleep(0.2)
elapsed = time.time() - start
print(f'{stored} messages stored in {elapsed:.1f} s: {stored / elapsed:.0f} messages/s (worker start included)')
"
