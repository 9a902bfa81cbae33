"""Error codes are defined once; the API's status and the CLI's exit code come from one table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bridge import errors as e
from bridge.errors import FAILURES, BridgeError, ErrorCode, ExitCode, exit_code, http_status

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"


def test_every_code_has_exactly_one_row() -> None:
    assert set(FAILURES) == set(ErrorCode)


def test_every_error_class_takes_its_code_from_the_enum() -> None:
    classes = [c for c in vars(e).values() if isinstance(c, type) and issubclass(c, BridgeError)]
    assert len(classes) >= 10
    for cls in classes:
        assert isinstance(cls.code, ErrorCode), cls


def _literal_codes(tree: ast.AST) -> set[str]:
    """String literals passed as `code=` (or to `error_response`) or assigned to `code` in a module."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
            found.add(str(node.value.value))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "error_response"
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
            found.add(str(node.args[1].value))
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named_code = any(isinstance(t, ast.Name) and t.id == "code" for t in targets)
            if named_code and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                found.add(node.value.value)
    return found


def test_every_code_written_anywhere_in_bridge_is_a_member_of_the_enum() -> None:
    unknown: dict[str, set[str]] = {}
    for path in BRIDGE.rglob("*.py"):
        codes = _literal_codes(ast.parse(path.read_text(), str(path))) - set(ErrorCode)
        if codes:
            unknown[str(path.relative_to(BRIDGE))] = codes
    assert not unknown, f"add these codes to bridge.errors.ErrorCode: {unknown}"


@pytest.mark.parametrize(
    ("exc", "status", "exit"),
    [
        (e.SnapshotError("gone", code="snapshot_not_found"), 404, ExitCode.NOT_FOUND),
        (e.SnapshotError("bad object"), 409, ExitCode.CHECK_FAILED),
        (e.SessionNotFound("no s1"), 404, ExitCode.NOT_FOUND),
        (e.SessionStateError("not open"), 409, ExitCode.REFUSED),
        (e.HostileNameError("../x"), 400, ExitCode.USAGE),
        (e.StoreError("full", code="storage_full"), 507, ExitCode.ERROR),
        (e.StoreError("locked", code="root_locked"), 409, ExitCode.REFUSED),
        (e.NodeRuntimeError("no ack", code="no_server_ack"), 503, ExitCode.ERROR),
    ],
)
def test_the_same_failure_has_the_same_status_and_exit_code_on_every_path(
    exc: BridgeError, status: int, exit: ExitCode
) -> None:
    assert http_status(exc) == status
    assert exit_code(exc) == exit


def test_a_code_the_table_does_not_know_falls_back_to_the_nearest_class() -> None:
    assert http_status(e.NodeRuntimeError("odd", code="something_node_said")) == 503
    assert http_status(e.SessionStateError("odd", code="made_up")) == 409
    assert http_status(BridgeError("odd", code="made_up")) == 500
