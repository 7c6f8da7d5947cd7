"""agenttrail.notify — webhooks: ``validation.failed`` and ``failure.new_group`` events, signed,
delivered off the ingest path with retries (see docs/webhooks.md)."""

from .config import EVENTS, Webhook, WebhookConfigError, parse_webhooks
from .delivery import Dispatcher, signature
from .watch import EventWatcher

__all__ = ["EVENTS", "Dispatcher", "EventWatcher", "Webhook", "WebhookConfigError", "parse_webhooks", "signature"]
