"""Names, payloads and recipient groups of the conversation events (contract section 15).

Choosing groups is a security decision, so it lives here once: supervisors see everything; an
assigned conversation goes to its operator; a queued one to the queue of its number.
"""

from elsehub import realtime
from elsehub.api.fields import format_timestamp

MESSAGE_NEW = "message:new"
MESSAGE_STATUS = "message:status"
CONVERSATION_UPDATED = "conversation:updated"
CONVERSATION_CLOSED = "conversation:closed"


def conversation_groups(conversation) -> list[str]:
    groups = [realtime.SUPERVISORS, realtime.conversation_group(conversation.id)]
    if conversation.operator_id:
        groups.append(realtime.user_group(conversation.operator_id))
    else:
        groups.append(realtime.queue_group(conversation.service_instance_id))
    return groups


def conversation_payload(conversation) -> dict:
    """The contract's conversation body (section 7); needs contact, instance and operator loaded."""
    return {
        "id": str(conversation.id),
        "contactId": str(conversation.contact_id),
        "contactName": conversation.contact.name,
        "contactPhone": conversation.contact.phone,
        "serviceInstanceId": str(conversation.service_instance_id),
        "serviceInstanceName": conversation.service_instance.name,
        "operatorId": str(conversation.operator_id) if conversation.operator_id else None,
        "operatorName": conversation.operator.name if conversation.operator_id else None,
        "status": conversation.status,
        "startTime": format_timestamp(conversation.start_time),
        "endTime": format_timestamp(conversation.end_time),
        "tabulationId": str(conversation.tabulation_id) if conversation.tabulation_id else None,
        "messageCount": conversation.message_count,
        "lastMessageAt": format_timestamp(conversation.last_message_at),
    }


def message_payload(message) -> dict:
    """The contract's message body (section 8); needs sender loaded when there is one."""
    has_media = bool(message.media_type)
    return {
        "id": str(message.id),
        "conversationId": str(message.conversation_id),
        "senderId": str(message.sender_id) if message.sender_id else None,
        "senderName": message.sender.name if message.sender_id else None,
        "content": message.content,
        "kind": message.kind,
        "hasMedia": has_media,
        "mediaType": message.media_type or None,
        "mediaFileName": message.media_file_name or None,
        "mediaMimeType": message.media_mime_type or None,
        "mediaSize": message.media_size,
        "mediaCaption": message.media_caption or None,
        "mediaStoragePath": None,
        "mediaPublicUrl": None,
        "mediaDownloadPath": f"/api/messages/{message.id}/media" if has_media else None,
        "direction": message.direction,
        "via": message.via,
        "externalId": message.external_id,
        "status": message.status,
        "statusCode": message.status_code or None,
        "statusReason": message.status_reason or None,
        "createdAt": format_timestamp(message.timestamp),
    }


def message_status_payload(message) -> dict:
    return {
        "id": str(message.id),
        "conversationId": str(message.conversation_id),
        "externalId": message.external_id,
        "status": message.status,
        "statusCode": message.status_code or None,
        "statusReason": message.status_reason or None,
        "changedAt": format_timestamp(message.status_changed_at),
    }


def publish_message_new(message, conversation) -> None:
    realtime.publish_on_commit(MESSAGE_NEW, message_payload(message), conversation_groups(conversation))


def publish_message_status(message, conversation) -> None:
    realtime.publish_on_commit(MESSAGE_STATUS, message_status_payload(message), conversation_groups(conversation))


def publish_conversation_updated(conversation, *, previous_operator_id=None) -> None:
    groups = conversation_groups(conversation)
    if previous_operator_id and previous_operator_id != conversation.operator_id:
        groups.append(realtime.user_group(previous_operator_id))  # so the old owner drops it
    if conversation.operator_id:
        groups.append(realtime.queue_group(conversation.service_instance_id))  # it left the queue
    realtime.publish_on_commit(CONVERSATION_UPDATED, conversation_payload(conversation), groups)


def publish_conversation_closed(conversation) -> None:
    # The contract's closed event names the conversation as ``conversationId``; the rest of the
    # body lets a client update its lists without another request.
    payload = {"conversationId": str(conversation.id), **conversation_payload(conversation)}
    realtime.publish_on_commit(CONVERSATION_CLOSED, payload, conversation_groups(conversation))
