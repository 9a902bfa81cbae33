"""Promises of issue 12 that do not hold yet, one reason each, with the root cause in the code.

Every failing fault test is marked `xfail(reason=..., strict=True)` with one of these, so the suite
stays green while it says exactly what is still broken, and turns red the moment a fix lands
(strict: an unexpected pass fails) so the mark gets removed.
"""

from __future__ import annotations

import pytest

ITEM1 = (
    "issue 12 item 1: store/creds.py:119 is_registered() counts the `me` that requestPairingCode sets before "
    "linking, the monitor snapshots only on a creds change older than snapshot_min_interval "
    "(monitor/watcher.py:384), so the newest registered snapshot is the one taken at registration "
    "(watcher.py:377: pre-link creds for a code, creds.json alone for a QR), and any damage restores it as a "
    "whole folder (watcher.py:443): a code-linked tenant gets 401/logged_out, a QR-linked one loses ~800 "
    "intact key files to .bridge/replaced/"
)
ITEM2 = (
    "issue 12 item 2: no identity check: monitor/folder_check.py:95 diagnose() finds valid registered creds "
    "healthy whoever they belong to, and sessions/session.py:_prepare_start does not compare the account "
    "either: no incident, the tenant keeps running (or starts) on the foreign account"
)
ITEM3 = (
    "issue 12 item 3: store/lock.py:63 os.open(O_RDWR|O_CREAT) raises a raw OSError (EROFS), which "
    "sessions/session.py:432-435 does not catch (only BridgeError) and bridge/app.py:108 re-raises from "
    "start_all: the bridge exits 1 with a traceback, no alert"
)
STORAGE = (
    "issue 12 storage faults: a store write failing with EROFS/ENOSPC at run time is logged "
    "(registry/snapshot warnings) but nothing turns it into an incident: no incident, no alert, the "
    "socket keeps running on state it cannot save"
)
ITEM6 = (
    "issue 12 item 6: monitor/folder_check.py:73 folder.iterdir() raises PermissionError (only "
    "FileNotFoundError is caught), so monitor/watcher.py check() fails with a logged traceback on every "
    "scan: no incident, no alert"
)
ITEM7 = (
    "issue 12 item 7: no root-level lock: a second bridge starts on the same root and both monitors "
    "restore the same damage (two incidents, two replaced folders); with item 1 the restore also moves "
    "intact key files away"
)


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=reason, strict=True)
