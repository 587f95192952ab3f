# Production image: one image for web, worker and beat (the command differs).
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=elsehub.settings.base \
    DEBUG=false \
    STATIC_ROOT=/app/staticfiles \
    DATA_DIR=/app/var

WORKDIR /app

RUN groupadd --system elsehub && useradd --system --gid elsehub --home-dir /app --shell /usr/sbin/nologin elsehub

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=elsehub:elsehub . .

# collectstatic only reads settings; the key below exists for this build step alone.
RUN SECRET_KEY=collectstatic-build-only python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /app/var && chown -R elsehub:elsehub /app/var /app/staticfiles

USER elsehub

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"

# HTTP and WebSockets on one ASGI server; see the README for scaling.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "elsehub.asgi:application"]
