"""baileys-bridge: a Python sidecar that runs Baileys in Node and owns every byte of its auth state."""

__version__ = "0.1.0"
