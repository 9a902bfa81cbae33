"""Webhooks: configs (config.py), Standard Webhooks signatures (signing.py), the delivery service
(dispatcher.py) over the event log's outbox. The HTTP routes live in bridge/api/webhooks.py."""
