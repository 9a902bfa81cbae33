"""The scale tests use the sessions' end-to-end fixtures (a SessionManager on a temp root, pointed
at the module's simulator, always shut down)."""

from tests.sessions.conftest import make_manager

__all__ = ["make_manager"]
