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
port=${BENCH_PORT:-8010}
export DEBUG=false SECRET_KEY=bench-secret-key-bench-secret-key-bench ALLOWED_HOSTS=127.0.0.1 LOG_LEVEL=WARNING
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/elsehub_bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
createdb -h 127.0.0.1 -U postgres elsehub_bench 2>/dev/null || true
.venv/bin/python manage.py migrate -v 0
secret=$(.venv/bin/python manage.py shell --no-imports -c '
import secrets
from instances.models import ServiceInstance
from webhooks.models import WebhookEvent
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
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.2; done
url="http://127.0.0.1:$port/api/webhooks/evolution"
echo "== constant $rate req/s for ${duration}s"
.venv/bin/python bench/loadgen.py --url "$url" --header "x-elsehub-secret: $secret" --rate "$rate" --duration "$duration"
echo "== maximum sustained rate (20 s steps)"
.venv/bin/python bench/loadgen.py --url "$url" --header "x-elsehub-secret: $secret" --rate 300 --duration 20 --find-max
