"""pytest fixtures that start the WhatsApp server simulator (filled in by the simulator work)."""
