"""Requests, responses and a regex router: the little web framework the simulator needs."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any


class BadJSON(ValueError):
    pass


class HTTPFailure(Exception):
    """Raised by handlers and their helpers to answer at once with ``response``."""

    def __init__(self, response: "Response"):
        super().__init__(response.status)
        self.response = response


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    base_url: str
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type") or ""

    def json(self) -> Any:
        """The decoded JSON body; ``{}`` when there is none."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadJSON(str(error)) from None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Response(status=status, body=body, headers=headers or {})


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str  # "*" matches any method
    pattern: re.Pattern
    handler: Handler
    #: "evolution", "meta" or "control": which provider's faults and error shapes apply
    area: str


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, area: str) -> None:
        self.routes.append(Route(method, re.compile(f"^{pattern}/?$"), handler, area))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method not in {"*", method}:
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: v for k, v in found.groupdict().items() if v is not None}
        return None
