"""WhatsApp Business Cloud API (Meta) adapter."""

from instances.providers.meta.provider import MetaProvider

__all__ = ["MetaProvider"]
