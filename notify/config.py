"""The ``webhooks`` setting: where to send which events, checked key by key.

In the config file (there is no environment-variable form)::

    webhooks:
      - url: https://hooks.example.com/agenttrail
        events: [validation.failed, failure.new_group]   # default: both
        projects: [shop]                                  # default: every project
        secret: s3cret                                    # signs each body (HMAC-SHA256)

A bad entry is refused at start with its position and key (``webhooks[0].events[1]: …``),
like every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

EVENTS = ("validation.failed", "failure.new_group")
MAX_WEBHOOKS = 50
_KEYS = ("url", "events", "projects", "secret")


class WebhookConfigError(ValueError):
    """A webhook entry cannot be used; the message names the entry and key."""


@dataclass(frozen=True)
class Webhook:
    """One subscription: POST ``events`` of ``projects`` (None = all) to ``url``."""

    url: str
    events: tuple[str, ...] = EVENTS
    projects: frozenset[str] | None = None
    secret: str = ""

    def wants(self, event: str, project_id: str) -> bool:
        """Whether this webhook subscribes to ``event`` for ``project_id``."""
        return event in self.events and (self.projects is None or project_id in self.projects)


def _strings(value, where: str, limit: int, item_limit: int = 256) -> list[str]:
    if not isinstance(value, list) or not value:
        raise WebhookConfigError(f"{where}: expected a non-empty list of strings")
    if len(value) > limit:
        raise WebhookConfigError(f"{where}: at most {limit} items")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > item_limit:
            raise WebhookConfigError(f"{where}[{i}]: expected a string of 1–{item_limit} characters")
    return value


def _url(value, where: str) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise WebhookConfigError(f"{where}: expected an http(s) URL of at most 2048 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise WebhookConfigError(f"{where}: expected an http(s) URL with a host, not {value[:100]!r}")
    return value


def parse_webhook(entry, where: str) -> Webhook:
    """One ``webhooks`` list item → :class:`Webhook`."""
    if not isinstance(entry, dict):
        raise WebhookConfigError(f"{where}: expected a mapping with url, events, projects, secret")
    unknown = sorted(str(k) for k in entry if k not in _KEYS)
    if unknown:
        raise WebhookConfigError(f"{where} has invalid keys: {', '.join(unknown)} (expected: {', '.join(_KEYS)})")
    if "url" not in entry:
        raise WebhookConfigError(f"{where}: url is required")
    fields = {"url": _url(entry["url"], f"{where}.url")}
    if "events" in entry:
        events = _strings(entry["events"], f"{where}.events", len(EVENTS), 64)
        for i, event in enumerate(events):
            if event not in EVENTS:
                raise WebhookConfigError(f"{where}.events[{i}]: unknown event {event!r} (expected: {', '.join(EVENTS)})")
        fields["events"] = tuple(dict.fromkeys(events))
    if "projects" in entry:
        fields["projects"] = frozenset(_strings(entry["projects"], f"{where}.projects", 1000))
    if "secret" in entry:
        secret = entry["secret"]
        if not isinstance(secret, str) or not 1 <= len(secret) <= 1024:
            raise WebhookConfigError(f"{where}.secret: expected a string of 1–1024 characters")
        fields["secret"] = secret
    return Webhook(**fields)


def parse_webhooks(value) -> tuple[Webhook, ...]:
    """The whole ``webhooks`` setting (a list, or empty)."""
    if value in (None, (), []):
        return ()
    if not isinstance(value, (list, tuple)):
        raise WebhookConfigError("webhooks: expected a list of {url, events, projects, secret}")
    if len(value) > MAX_WEBHOOKS:
        raise WebhookConfigError(f"webhooks: at most {MAX_WEBHOOKS} entries")
    return tuple(parse_webhook(entry, f"webhooks[{i}]") for i, entry in enumerate(value))
