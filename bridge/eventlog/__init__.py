"""The durable event log and webhook outbox (SQLite under BRIDGE_STATE_DIR); see log.py."""
