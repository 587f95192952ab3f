"""An HTTP server that stands in for Evolution API v2 and the WhatsApp Cloud API.

It serves both providers' REST subsets on one port, keeps everything in memory, plays the phones
(status receipts, scripted QR scans, injected inbound messages) and delivers webhooks back to the
console. Nothing here touches Django; ``manage.py simulate_provider`` is only a launcher and
``server.run_in_thread`` starts one for tests.

Modules: ``server`` (HTTP, fault injection, ``run_in_thread``), ``state`` (config, faults, the
in-memory world), ``evolution*`` (Evolution routes and payloads), ``meta*`` (Graph routes and
payloads), ``inbound`` (customer messages), ``webhooks`` (delivery, signing, log), ``media``
(QR PNGs and sample files), ``control`` (``/_sim/``), ``client`` (the CLI's control client).

Control API (no auth: the server binds to 127.0.0.1 unless told otherwise; never expose it):
``GET /_sim/health``, ``GET /_sim/state[?bodies=1]``, ``GET /_sim/webhooks[?event=&target=]``,
``POST /_sim/reset``, ``GET|POST /_sim/faults``, ``POST /_sim/inbound``, ``POST /_sim/scan``,
``POST /_sim/disconnect``, ``POST /_sim/meta/numbers``.
"""
