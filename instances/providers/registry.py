"""Which adapter serves which ``ServiceInstance.provider`` value."""

from django.utils.module_loading import import_string

from instances.providers.base import Provider

ADAPTERS = {
    "EVOLUTION_API": "instances.providers.evolution.EvolutionProvider",
    "OFFICIAL_META": "instances.providers.meta.MetaProvider",
}
# Tests swap an adapter here (see instances.providers.fake); nothing else writes to it.
_overrides: dict[str, type[Provider]] = {}


def real_adapter_class(provider: str) -> type[Provider]:
    try:
        return import_string(ADAPTERS[provider])
    except KeyError:
        raise ValueError(f"unknown provider {provider!r}") from None


def adapter_class(provider: str) -> type[Provider]:
    return _overrides.get(provider) or real_adapter_class(provider)
