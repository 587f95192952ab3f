"""Create (once) the demo WhatsApp number served by the provider simulator, and wait until it is
connected. Used by ``make run`` so that a new user sees a working number at once.
"""

import os
import time

import requests
from django.core.management.base import BaseCommand, CommandError

from instances import services
from instances.models import ConnectionStatus, Provider, ServiceInstance
from instances.providers.exceptions import ProviderError

DEMO_NAME = "Demo (simulador)"


class Command(BaseCommand):
    help = "Create the demo Evolution instance on the provider simulator and wait for it to connect."

    def add_arguments(self, parser):
        parser.add_argument("--simulator-url", default=os.environ.get("SIMULATOR_URL", "http://127.0.0.1:8081"))
        parser.add_argument("--api-key", default=os.environ.get("SIMULATOR_EVOLUTION_KEY", "sim-evolution-key"))
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args, simulator_url: str, api_key: str, timeout: float, **options):
        deadline = time.monotonic() + timeout
        self._wait_for_simulator(simulator_url, deadline)
        instance = ServiceInstance.objects.alive().filter(name=DEMO_NAME).first()
        if instance is None:
            try:
                instance = services.create_instance(
                    name=DEMO_NAME,
                    phone="+55 14 99876-5432",
                    provider=Provider.EVOLUTION_API,
                    credentials={"serverUrl": simulator_url, "apiToken": api_key, "instanceName": "demo"},
                )
            except ProviderError as exc:
                raise CommandError(f"could not create the demo instance: {exc.message}") from exc
        elif services.refresh_status(instance=instance).connection_status != ConnectionStatus.CONNECTED:
            # The simulator keeps no state between runs: create the remote instance again.
            try:
                services.recreate_instance(instance=instance)
            except ProviderError as exc:
                raise CommandError(f"could not recreate the demo instance: {exc.message}") from exc
        while instance.connection_status != ConnectionStatus.CONNECTED and time.monotonic() < deadline:
            time.sleep(1)
            instance = services.refresh_status(instance=instance)
        self.stdout.write(f"Demo number: {instance.name} ({instance.phone}) is {instance.connection_status}.")

    def _wait_for_simulator(self, url: str, deadline: float) -> None:
        while True:
            try:
                requests.get(f"{url}/_sim/state", timeout=2).raise_for_status()
                return
            except requests.RequestException as exc:
                if time.monotonic() > deadline:
                    raise CommandError(f"the provider simulator at {url} does not answer") from exc
                time.sleep(0.5)
