"""Issue 12, creds.json damaged under a running tenant: deleted, truncated, made invalid, replaced by
never-linked creds (each must end with the tenant open on its own account, one incident, one
critical alert, intact key files left in place), or replaced by another tenant's creds (the bridge
cannot know who is right: the tenant is stopped with one incident, nothing overwritten).

The whole bridge runs as `python -m bridge` against the simulator with real Baileys; tenants link
through the HTTP API by QR and by pairing code and are damaged a few seconds after pairing,
settled, or old (tenants.Age). The default run keeps two representative cases; the full
damage x login x age matrix is `slow`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.conftest import MakeBridge
from tests.faults.damage import CredsDamage, copy_creds, damage_creds
from tests.faults.known import matrix
from tests.faults.tenants import Age, Login, age, key_files, link
from tests.faults.verdict import clean_exit, held_stopped, reopened
from tests.simulator.client import SimulatorClient


async def creds_damage_case(
    make_bridge: MakeBridge, simulator: SimulatorClient, tmp_path: Path, how: CredsDamage, login: Login, when: Age
) -> None:
    bridge = await make_bridge().start()
    tenant = await link(bridge, simulator, "tenant", login)
    await age(bridge, simulator, [tenant], when)
    intact = key_files(tenant.folder)
    mark = bridge.mark()
    damage_creds(tenant.folder, how, tmp_path)
    damaged_at = time.time()
    await reopened(bridge, simulator, tenant, mark=mark, damaged_at=damaged_at, intact=intact,
                   label=f"creds {how} {login} {when}")
    await clean_exit(bridge)


async def foreign_creds_case(
    make_bridge: MakeBridge, simulator: SimulatorClient, login: Login, when: Age
) -> None:
    bridge = await make_bridge().start()
    victim = await link(bridge, simulator, "victim", login)
    other = await link(bridge, simulator, "other", Login.QR)
    await age(bridge, simulator, [victim, other], when)
    mark = bridge.mark()
    foreign = copy_creds(other.folder, victim.folder)
    await held_stopped(bridge, victim, mark=mark, foreign=foreign, label=f"foreign creds {login} {when}")
    assert not bridge.since(mark, "other", "incident"), "the tenant whose creds were copied is not damaged"
    assert (await bridge.session("other"))["state"] == "open"
    await clean_exit(bridge)


async def test_creds_torn_seconds_after_pairing_by_code_come_back_as_the_same_account(
    make_bridge: MakeBridge, simulator: SimulatorClient, tmp_path: Path
) -> None:
    await creds_damage_case(make_bridge, simulator, tmp_path, CredsDamage.TRUNCATED, Login.CODE, Age.FRESH)


@pytest.mark.slow
async def test_another_tenants_creds_copied_over_stop_the_tenant_with_one_incident(
    make_bridge: MakeBridge, simulator: SimulatorClient
) -> None:
    await foreign_creds_case(make_bridge, simulator, Login.QR, Age.SETTLED)


CREDS_KNOWN: dict[str, str] = {}
FOREIGN_KNOWN: dict[str, str] = {}


@pytest.mark.slow
@pytest.mark.parametrize(("how", "login", "when"),
                         matrix({"how": list(CredsDamage), "login": list(Login), "when": list(Age)}, CREDS_KNOWN))
async def test_damaged_creds_matrix(
    make_bridge: MakeBridge, simulator: SimulatorClient, tmp_path: Path, how: CredsDamage, login: Login, when: Age
) -> None:
    await creds_damage_case(make_bridge, simulator, tmp_path, how, login, when)


@pytest.mark.slow
@pytest.mark.parametrize(("login", "when"), matrix({"login": list(Login), "when": list(Age)}, FOREIGN_KNOWN))
async def test_foreign_creds_matrix(
    make_bridge: MakeBridge, simulator: SimulatorClient, login: Login, when: Age
) -> None:
    await foreign_creds_case(make_bridge, simulator, login, when)
