"""Messages: the one model, send rules, and the normalising of what Baileys reports (docs/messages.md)."""
