from datetime import UTC, datetime

from rest_framework import serializers


def format_timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and ``Z``: ``2025-01-15T10:30:00.000Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Timestamp(serializers.DateTimeField):
    def to_representation(self, value):
        return format_timestamp(value)
