import secrets

import factory

from instances.models import ConnectionStatus, Provider, ServiceInstance

EVOLUTION_CREDENTIALS = {
    "serverUrl": "http://evolution.test:8080",
    "apiToken": "xrgr4qjcxhZ3m5kn2Rc3DdN5qSnhS3cp",
    "instanceName": "vendas01",
}
META_CREDENTIALS = {"wabaId": "200000000000001", "phoneId": "100000000000001", "accessToken": "EAAtokenvalue1234"}


class ServiceInstanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceInstance
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"WhatsApp {n}")
    phone = "5514900000001"
    provider = Provider.EVOLUTION_API
    connection_status = ConnectionStatus.CONNECTED

    @factory.post_generation
    def credentials(self, create, extracted, **kwargs):
        defaults = EVOLUTION_CREDENTIALS if self.provider == Provider.EVOLUTION_API else META_CREDENTIALS
        values = dict(extracted or defaults)
        if extracted is None and self.provider == Provider.EVOLUTION_API:
            values["instanceName"] = f"inst-{secrets.token_hex(4)}"
        self.set_credentials(values)
        self.set_webhook_secret(secrets.token_urlsafe(16))
        if create:
            self.save()
