"""Run the provider simulator (Evolution API + WhatsApp Cloud API), or drive a running one.

    manage.py simulate_provider --port 8081                 # serve until Ctrl-C / SIGTERM
    manage.py simulate_provider scan --instance acme        # the phone scans the QR
    manage.py simulate_provider say --instance acme --from +5514999999999 "Oi"
    manage.py simulate_provider say --meta --from +5514999999999 --kind image
    manage.py simulate_provider faults --latency-ms 200 --error-rate 0.1
    manage.py simulate_provider state

The simulator needs no database; see ``instances/simulator/``.
"""

import json
import logging
import os

from django.core.management.base import BaseCommand, CommandError

from instances.simulator.client import SimulatorClient, SimulatorClientError
from instances.simulator.inbound import KINDS
from instances.simulator.server import run_in_thread, serve_until_signal

DEFAULT_URL = os.environ.get("SIMULATOR_URL", "http://127.0.0.1:8081")
_STANDARD_RECORD_KEYS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class _ExtrasFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_KEYS)
        return f"{super().format(record)} {extras}".rstrip()


def _bool(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


class Command(BaseCommand):
    help = "Run the WhatsApp provider simulator, or talk to a running one (say, scan, faults, state...)."

    def add_arguments(self, parser):
        # Without this, argparse matches "say --meta" against the server's --meta-* prefixes.
        parser.allow_abbrev = False
        server = parser.add_argument_group("server (no subcommand)")
        server.add_argument("--port", type=int, default=8081)
        server.add_argument("--host", default="127.0.0.1", help="keep 127.0.0.1: the /_sim/ control API has no auth")
        server.add_argument("--evolution-api-key", default="sim-evolution-key")
        server.add_argument("--meta-app-secret", default="sim-app-secret")
        server.add_argument("--meta-access-token", default="sim-meta-token")
        server.add_argument("--meta-phone-id", default="100000000000001")
        server.add_argument("--meta-waba-id", default="200000000000001")
        server.add_argument("--meta-display-phone", default="5514900000001")
        server.add_argument("--auto-scan", type=float, metavar="SECONDS", help="scan every QR after N seconds")
        server.add_argument(
            "--qr-refresh",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="new QR (qrcode.updated) every N seconds; 0 = never",
        )
        server.add_argument("--webhook-delay", type=float, default=0.2, metavar="SECONDS")
        server.add_argument(
            "--no-verify-callback", action="store_true", help="store Meta callback URLs without the hub.challenge check"
        )
        server.add_argument("--seed", type=int, help="seed the fault dice")

        actions = parser.add_subparsers(dest="action", title="subcommands (talk to a running simulator)")
        say = actions.add_parser("say", help="a customer sends a message")
        scan = actions.add_parser("scan", help="the phone scans an instance's QR code")
        disconnect = actions.add_parser("disconnect", help="the phone drops an Evolution session")
        faults = actions.add_parser("faults", help="set fault knobs (only the ones given change)")
        state = actions.add_parser("state", help="print the simulator's state")
        reset = actions.add_parser("reset", help="forget everything (faults too)")
        for sub in (say, scan, disconnect, faults, state, reset):
            sub.add_argument("--url", default=DEFAULT_URL, help=f"running simulator (default {DEFAULT_URL})")

        say.add_argument("text", nargs="?", help="text, or caption of media")
        say.add_argument("--instance", help="Evolution instance name (with --meta: the Meta phone id)")
        say.add_argument("--meta", action="store_true", help="target a Meta number instead of an Evolution instance")
        say.add_argument("--from", dest="sender", required=True, help="customer phone, e.g. +5514999999999")
        say.add_argument("--kind", choices=KINDS, default="text")
        say.add_argument("--name", help="customer's push name")
        say.add_argument("--group", action="store_true", help="send inside a group chat")
        say.add_argument("--group-id", help="group id (default: one stable group per instance)")
        say.add_argument("--react-to", help="message id to react to (default: our last message in the chat)")
        say.add_argument("--emoji", help="reaction emoji ('' removes)")
        say.add_argument("--reply-to", help="message id to quote")
        say.add_argument("--file-name", help="document file name")
        say.add_argument("--from-me", action="store_true", help="Evolution: typed on the phone itself")
        say.add_argument("--addressing", choices=("pn", "lid"), help="Evolution key addressing mode")
        say.add_argument(
            "--hide-phone",
            action="store_true",
            help="the customer hides their number (Meta: business-scoped user id; Evolution: LID only)",
        )

        scan.add_argument("--instance", required=True)
        scan.add_argument("--number", help="the phone's number (default: from create, or a stable fake)")
        scan.add_argument("--profile-name")
        disconnect.add_argument("--instance", required=True)
        disconnect.add_argument(
            "--reason",
            type=int,
            default=401,
            help="401 logged out (default), 403; 408/428/440/500/515 reconnect by themselves",
        )

        faults.add_argument("--latency-ms", dest="f_latency_ms", type=int)
        faults.add_argument("--error-rate", dest="f_error_rate", type=float)
        faults.add_argument("--rate-limit-burst", dest="f_rate_limit_burst", type=int)
        faults.add_argument("--timeout-rate", dest="f_timeout_rate", type=float)
        faults.add_argument("--timeout-seconds", dest="f_timeout_seconds", type=float)
        faults.add_argument("--duplicate-webhooks", dest="f_duplicate_webhooks", type=float)
        faults.add_argument("--out-of-order", dest="f_out_of_order", type=_bool, metavar="true|false")
        faults.add_argument("--reset", dest="f_reset", action="store_true", help="clear every fault first")

    def handle(self, *args, **options):
        action = options.get("action")
        if not action:
            return self.serve(options)
        client = SimulatorClient(options["url"])
        try:
            result = getattr(self, f"do_{action}")(client, options)
        except SimulatorClientError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))

    # -- server --------------------------------------------------------------------------------
    def serve(self, options):
        if options["verbosity"] >= 1:
            handler = logging.StreamHandler(self.stdout._out)
            handler.setFormatter(_ExtrasFormatter("%(asctime)s %(message)s"))
            sim_logger = logging.getLogger("instances.simulator")
            sim_logger.handlers[:] = [handler]
            sim_logger.setLevel(logging.INFO if options["verbosity"] >= 2 else logging.WARNING)
            sim_logger.propagate = False
        try:
            handle = run_in_thread(
                port=options["port"],
                host=options["host"],
                evolution_api_key=options["evolution_api_key"],
                meta_app_secret=options["meta_app_secret"],
                meta_access_token=options["meta_access_token"],
                meta_phone_id=options["meta_phone_id"],
                meta_waba_id=options["meta_waba_id"],
                meta_display_phone=options["meta_display_phone"],
                auto_scan=options["auto_scan"],
                qr_refresh=options["qr_refresh"],
                webhook_delay=options["webhook_delay"],
                verify_meta_callback=not options["no_verify_callback"],
                seed=options["seed"],
            )
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from None
        lines = [
            f"Provider simulator listening on {handle.url}",
            f"  Evolution API: {handle.url}  apikey: {options['evolution_api_key']}",
            f"  Meta Graph:    {handle.url}/v23.0  token: {options['meta_access_token']}  "
            f"app secret: {options['meta_app_secret']}",
            f"                 phone id {options['meta_phone_id']}  WABA {options['meta_waba_id']}  "
            f"number {options['meta_display_phone']}",
            f"  Control API:   {handle.url}/_sim/ (no auth: keep it on 127.0.0.1)",
            "Ctrl-C to stop.",
        ]
        if options["host"] not in {"127.0.0.1", "localhost", "::1"}:
            lines.insert(1, f"  WARNING: bound to {options['host']}; anyone who can reach it controls the simulator")

        def announce() -> None:
            self.stdout.write("\n".join(lines))
            self.stdout.flush()

        serve_until_signal(handle, ready=announce)
        self.stdout.write("Provider simulator stopped.")

    # -- subcommands ---------------------------------------------------------------------------
    def do_say(self, client, options):
        if not options["meta"] and not options["instance"]:
            raise CommandError("say needs --instance NAME (or --meta)")
        target = (
            {"provider": "meta", "phoneId": options["instance"]}
            if options["meta"]
            else {"instance": options["instance"]}
        )
        return client.say(
            **target,
            **{
                "from": options["sender"],
                "kind": options["kind"],
                "text": options["text"],
                "name": options["name"],
                "group": options["group"] or None,
                "groupId": options["group_id"],
                "reactTo": options["react_to"],
                "emoji": options["emoji"],
                "replyTo": options["reply_to"],
                "fileName": options["file_name"],
                "fromMe": options["from_me"] or None,
                "addressing": options["addressing"],
                "hidePhone": options["hide_phone"] or None,
            },
        )

    def do_scan(self, client, options):
        return client.scan(options["instance"], number=options["number"], profileName=options["profile_name"])

    def do_disconnect(self, client, options):
        return client.disconnect(options["instance"], options["reason"])

    def do_faults(self, client, options):
        values = {k[2:]: v for k, v in options.items() if k.startswith("f_") and v is not None and k != "f_reset"}
        if options.get("f_reset"):
            values["reset"] = True
        return client.faults(**values)

    def do_state(self, client, options):
        return client.state()

    def do_reset(self, client, options):
        return client.reset()
