"""Evolution API v2 (WhatsApp through Baileys) adapter."""

from instances.providers.evolution.provider import EvolutionProvider

__all__ = ["EvolutionProvider"]
