"""Edits and revokes of a message we stored."""

from django.db import transaction
from django.utils.translation import gettext as _

from conversations.services.inbound.common import _locked_message, logger
from instances.models import ServiceInstance
from instances.providers.types import MessageEdited, MessageKind, MessageRevoked


def apply_message_edited(*, instance: ServiceInstance, event: MessageEdited) -> None:
    """Store the new text (suffixed "(edited)") of a text, or the new caption of a media message.

    An edit of a message we never stored is dropped: there is nothing to show it on.
    """
    text = (event.text or "").strip()
    if not text:
        return
    with transaction.atomic():
        message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            logger.info("conversations.inbound.edit_unknown", extra={"instance_id": str(instance.pk)})
            return
        if message.kind == MessageKind.TEXT:
            field, value = "content", _("%(text)s (edited)") % {"text": text}
        else:
            field, value = "media_caption", text
        if getattr(message, field) == value:
            return
        setattr(message, field, value)
        message.save(update_fields=[field, "updated_at"])


def apply_message_revoked(*, instance: ServiceInstance, event: MessageRevoked) -> None:
    """The sender deleted the message for everyone: keep the row, drop its words."""
    with transaction.atomic():
        message = _locked_message(instance=instance, external_id=event.provider_message_id)
        if message is None:
            logger.info("conversations.inbound.revoke_unknown", extra={"instance_id": str(instance.pk)})
            return
        placeholder = _("[Deleted message]")
        if message.content == placeholder and not message.media_caption:
            return
        message.content = placeholder
        message.media_caption = ""
        message.save(update_fields=["content", "media_caption", "updated_at"])
