"""The protocol, sans I/O: what decodes, what is rejected, and what a rejection still tells us."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.ipc import protocol as p
from bridge.ipc.protocol_doc import render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_docs_protocol_md_is_generated_from_protocol_py() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/protocol.md is stale: run `python -m bridge.ipc.protocol_doc > docs/protocol.md`"
    )


def test_every_catalogue_name_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for entry in p.CATALOGUE:
        assert f"| `{entry.name}` |" in text


def test_round_trip_of_each_kind() -> None:
    msgs: list[p.Message] = [
        p.Cmd(id=1, s="a", cmd="start", args={"wa_url": "ws://x"}),
        p.Req(id=2, s="a", op="auth.get", args={"type": "pre-key", "ids": ["1"]}),
        p.ok(3, "a", {"1": None}),
        p.fail(4, "a", "store_error", "disk full"),
        p.Evt(s="a", name="qr", data={"qr": "2@abc"}),
    ]
    for msg in msgs:
        line = p.encode(msg)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert p.decode(line) == msg


def test_wire_format_is_the_documented_one() -> None:
    line = p.encode(p.Req(id=7, s="tenant-1", op="creds.save", args={"creds": "{}"}))
    assert json.loads(line) == {"t": "req", "id": 7, "s": "tenant-1", "op": "creds.save", "args": {"creds": "{}"}}
    assert json.loads(p.encode(p.ok(7, "tenant-1"))) == {"t": "res", "id": 7, "s": "tenant-1", "ok": True}


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe\x00garbage", "bad_json"),
        (b'{"t":"nope","id":1,"s":"a"}', "bad_shape"),
        (b'{"t":"req","id":1,"s":"../etc","op":"auth.load","args":{}}', "bad_shape"),
        (b'{"t":"req","id":-1,"s":"a","op":"auth.load"}', "bad_shape"),
        (b'{"t":"req","id":1,"s":"a","op":"auth.load","extra":1}', "bad_shape"),
        (b"[1,2,3]", "bad_shape"),
    ],
)
def test_malformed_lines_are_rejected_with_a_kind(line: bytes, kind: str) -> None:
    with pytest.raises(p.MessageRejected) as info:
        p.decode(line)
    assert info.value.kind == kind
    assert info.value.code == "protocol_error"


def test_a_rejected_request_keeps_its_id_so_it_can_be_answered() -> None:
    with pytest.raises(p.MessageRejected) as info:
        p.decode(b'{"t":"req","id":41,"s":"a","op":"auth.get","args":{},"junk":true}')
    assert (info.value.msg_id, info.value.session, info.value.t) == (41, "a", "req")


def test_oversize_line_is_rejected_before_parsing() -> None:
    with pytest.raises(p.MessageRejected) as info:
        p.decode(b'{"t":"evt"}' + b" " * 100, max_line=64)
    assert info.value.kind == "too_long"


def test_unknown_op_and_bad_args_are_answerable() -> None:
    req = p.decode(b'{"t":"req","id":9,"s":"a","op":"fs.unlink","args":{"path":"creds.json"}}')
    assert isinstance(req, p.Req)
    with pytest.raises(p.MessageRejected) as info:
        p.validate_args(req)
    assert (info.value.kind, info.value.msg_id) == ("unknown_op", 9)
    bad = p.Req(id=10, s="a", op="auth.get", args={"type": "pre-key", "ids": "1"})
    with pytest.raises(p.MessageRejected) as info:
        p.validate_args(bad)
    assert info.value.kind == "bad_args"


def test_no_message_in_the_catalogue_can_delete_creds() -> None:
    names = {e.name for e in p.CATALOGUE}
    assert not any(word in n for n in names for word in ("delete", "remove", "unlink", "wipe", "rm"))
    assert set(p.REQUESTS) == {"auth.load", "auth.get", "auth.set", "creds.save", "message.get", "message.durable"}
    with pytest.raises(p.MessageRejected):
        p.validate_args(p.Req(id=1, s="a", op="creds.save", args={"creds": None}))


def test_typed_args() -> None:
    args = p.validate_args(p.Req(id=1, s="a", op="auth.set", args={"data": {"pre-key": {"1": "{}", "2": None}}}))
    assert isinstance(args, p.AuthSetArgs)
    assert args.data == {"pre-key": {"1": "{}", "2": None}}
    start = p.validate_args(p.Cmd(id=1, s="a", cmd="start", args={"wa_url": "ws://127.0.0.1:1"}))
    assert isinstance(start, p.StartArgs) and start.login == "qr"
