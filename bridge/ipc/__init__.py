"""ipc part of baileys-bridge (see docs/architecture.md)."""
