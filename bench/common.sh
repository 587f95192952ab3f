# Shared by the webhook benchmarks (sourced, not run): environment, a clean bench database with
# one Evolution number, an empty Redis database, and two gunicorn processes on $port.
# Sets $secret (the number's webhook secret) and $server (gunicorn's pid).
export DEBUG=false SECRET_KEY=bench-secret-key-bench-secret-key-bench ALLOWED_HOSTS=127.0.0.1 LOG_LEVEL=WARNING
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/elsehub_bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
port=${BENCH_PORT:-8010}
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
# Each run starts from the same tables: without this, the rows deleted above stay as dead tuples
# and every run is slower than the one before.
psql -q "$DATABASE_URL" -c "VACUUM ANALYZE webhooks_webhookevent, conversations_message, conversations_conversation, contacts_contact"
redis-cli -n "${REDIS_URL##*/}" flushdb >/dev/null
.venv/bin/gunicorn elsehub.wsgi -w 2 -b "127.0.0.1:$port" --log-level warning &
server=$!
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.2; done
