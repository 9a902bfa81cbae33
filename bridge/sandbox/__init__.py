"""Sandbox mode: the whole bridge beside the bundled WhatsApp simulator (docs/sandbox.md).

`python -m bridge --sandbox` (or BRIDGE_SANDBOX=true) starts the simulator as a supervised Node
child, points every session at it, keeps its data in its own roots, answers with an echo contact,
and labels itself everywhere (event JSON, `bridge_sandbox` metric, dashboard banner) so sandbox
data can never pass for production data.
"""

from bridge.sandbox.mode import SandboxRun, production_guard, sandbox_mode
from bridge.sandbox.roots import SandboxRefused, sandbox_roots

__all__ = ["SandboxRefused", "SandboxRun", "production_guard", "sandbox_mode", "sandbox_roots"]
