"""One writer: only bridge/store/durable.py puts bytes on disk (docs/storage.md, issue 13).

An AST scan of every bridge/**/*.py: a call that renames, writes, or opens a file for writing
anywhere else fails this test, so durability rules (temp file, fsync, rename, folder fsync,
classified errors) live in one module and stay there. Modules owned by others that still write
their own way are listed in PENDING with the reason; an entry goes when its owner converts.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"
THE_WRITER = "store/durable.py"

#: module (relative to bridge/) -> why it still writes by itself. The lead removes entries.
PENDING: dict[str, str] = {}

_OS_WRITERS = {"replace", "rename", "renames", "write", "pwrite", "writev", "ftruncate", "truncate"}
_SHUTIL_WRITERS = {"move", "copy", "copy2", "copyfile", "copytree", "copyfileobj"}
_PATH_WRITERS = {"write_text", "write_bytes"}
_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}
_NOT_FILE_OPENERS = {"os", "io", "tarfile", "gzip", "zipfile"}
#: In bridge/store/ also every other change of the tree: deleting, making folders, chmod.
_STORE_ALSO = {"unlink", "remove", "rmdir", "rmtree", "mkdir", "makedirs", "chmod", "removedirs"}
#: `<receiver>.replace(x)` receivers that are not paths.
_NOT_PATHS = {"msgspec.structs", "dataclasses", "structs"}


@dataclass(frozen=True)
class Finding:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"bridge/{self.module}:{self.line}: {self.what}"


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _mode_of(call: ast.Call, position: int) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "mode" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    if len(call.args) > position and isinstance(call.args[position], ast.Constant):
        return str(call.args[position].value)  # type: ignore[attr-defined]
    return None


def _writes_mode(mode: str | None) -> bool:
    return mode is not None and any(c in mode for c in "wax+")


def _flags(node: ast.expr) -> set[str]:
    if isinstance(node, ast.BinOp):
        return _flags(node.left) | _flags(node.right)
    if isinstance(node, ast.Attribute):
        return {node.attr}
    if isinstance(node, ast.Name):
        return {node.id}
    return set()


def _judge(call: ast.Call) -> str | None:
    """What a call writes, or None when it writes nothing on disk."""
    func = call.func
    name = _dotted(func)
    if name in {f"os.{w}" for w in _OS_WRITERS}:
        return name
    if name in {f"shutil.{w}" for w in _SHUTIL_WRITERS}:
        return name
    if name == "os.open" and len(call.args) > 1 and _flags(call.args[1]) & _WRITE_FLAGS:
        return f"os.open with {', '.join(sorted(_flags(call.args[1]) & _WRITE_FLAGS))}"
    if name in ("open", "io.open") and _writes_mode(_mode_of(call, 1)):
        return f"{name}(..., {_mode_of(call, 1)!r})"
    if not isinstance(func, ast.Attribute):
        return None
    receiver = _dotted(func.value)
    if func.attr in _PATH_WRITERS:
        return f".{func.attr}()"
    if func.attr == "open" and receiver not in _NOT_FILE_OPENERS and _writes_mode(_mode_of(call, 0)):
        return f".open({_mode_of(call, 0)!r})"
    if func.attr == "open" and receiver == "tarfile" and _writes_mode(_mode_of(call, 1)):
        if not any(k.arg == "fileobj" for k in call.keywords):
            return "tarfile.open for writing a file"
    if func.attr == "rename" and len(call.args) == 1:
        return ".rename()"
    if func.attr == "replace" and len(call.args) == 1 and not call.keywords and receiver not in _NOT_PATHS:
        return ".replace() of a path"
    return None


def _judge_in_store(call: ast.Call) -> str | None:
    """Inside the store, deleting files, making folders and chmod go through durable too."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in _STORE_ALSO:
        receiver = _dotted(func.value)
        if receiver in ("os", "shutil") or func.attr != "remove":  # list.remove is no file
            return f"{receiver or '<path>'}.{func.attr}()"
    return None


def scan(root: Path = BRIDGE) -> list[Finding]:
    """Every write outside durable.py, by module and line."""
    found: list[Finding] = []
    for path in sorted(root.rglob("*.py")):
        module = str(path.relative_to(root))
        if module == THE_WRITER:
            continue
        in_store = module.startswith("store/")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            what = _judge(node) or (_judge_in_store(node) if in_store else None)
            if what is not None:
                found.append(Finding(module, node.lineno, what))
    return found


def test_only_durable_writes_to_disk() -> None:
    offending = [f for f in scan() if f.module not in PENDING]
    assert not offending, "write through bridge/store/durable.py instead:\n" + "\n".join(map(str, offending))


def test_every_pending_module_still_writes_by_itself() -> None:
    """A stale PENDING entry hides nothing but misleads: drop it once its module converted."""
    writers = {f.module for f in scan()}
    stale = sorted(set(PENDING) - writers)
    assert not stale, f"remove these from PENDING, they write through durable now: {stale}"


def test_the_scan_catches_every_way_of_writing(tmp_path: Path) -> None:
    """The rule itself, on a module that writes every way it knows (and a few that do not write)."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "durable.py").write_text("import os\nos.replace('a', 'b')\n")
    (tmp_path / "rogue.py").write_text(
        "import os, shutil, tarfile, msgspec, dataclasses\n"
        "from pathlib import Path\n"
        "os.replace('a', 'b')\n"
        "os.rename('a', 'b')\n"
        "os.write(1, b'x')\n"
        "os.open('f', os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "open('f', 'w')\n"
        "open('f', mode='ab')\n"
        "Path('f').open('r+')\n"
        "Path('f').write_text('x')\n"
        "Path('f').write_bytes(b'x')\n"
        "Path('a').rename('b')\n"
        "Path('a').replace('b')\n"
        "shutil.move('a', 'b')\n"
        "shutil.copy2('a', 'b')\n"
        "tarfile.open('x.tar', 'w')\n"
        "# not writes:\n"
        "open('f')\n"
        "open('f', 'rb')\n"
        "os.open('f', os.O_RDONLY)\n"
        "'a:b'.replace(':', '-')\n"
        "msgspec.structs.replace(x)\n"
        "dataclasses.replace(x)\n"
        "tarfile.open(fileobj=buf, mode='w:gz')\n"
    )
    (tmp_path / "store" / "rogue.py").write_text(
        "import os, shutil\nfrom pathlib import Path\n"
        "os.unlink('a')\nPath('a').unlink()\nshutil.rmtree('d')\nPath('d').mkdir()\nos.chmod('a', 0)\n"
        "names.remove('x')\n"
    )
    found = scan(tmp_path)
    assert {f.module for f in found} == {"rogue.py", "store/rogue.py"}, "durable.py itself is the writer"
    assert [f.line for f in found if f.module == "rogue.py"] == list(range(3, 17)), [str(f) for f in found]
    assert [f.line for f in found if f.module == "store/rogue.py"] == list(range(3, 8)), [str(f) for f in found]
