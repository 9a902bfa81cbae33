"""The coordinator's plan (bridge/cluster/share.py) as a pure function of the rows: who claims,
who hands over, who stops at once."""

from __future__ import annotations

from bridge.cluster.share import LeaseView, fair_share, plan_round

TENANTS = [f"t{i:02d}" for i in range(10)]


def leases(owner_of: dict[str, str], *, live: bool = True) -> dict[str, LeaseView]:
    return {sid: LeaseView(sid, owner, live) for sid, owner in owner_of.items()}


def test_fair_share_is_the_ceiling_of_tenants_over_live_nodes() -> None:
    assert fair_share(30, 3) == 10
    assert fair_share(10, 3) == 4
    assert fair_share(5, 0) == 5


def test_a_node_claims_free_tenants_up_to_its_fair_share_only() -> None:
    plan = plan_round("a", TENANTS, {}, live_nodes=["a", "b", "c"], hosted=[])
    assert len(plan.claim) == 4 and set(plan.claim) <= set(TENANTS)
    assert plan.stop == () and plan.release == ()


def test_nodes_starting_together_prefer_different_tenants() -> None:
    firsts = {plan_round(n, TENANTS, {}, ["a", "b", "c"], []).claim for n in ("a", "b", "c")}
    assert len(firsts) == 3


def test_an_expired_lease_is_free_but_a_live_lease_of_a_silent_node_is_not() -> None:
    rows = {**leases({"t00": "dead"}, live=False), **leases({"t01": "paused"})}
    plan = plan_round("a", ["t00", "t01"], rows, live_nodes=["a"], hosted=[])
    assert plan.claim == ("t00",)  # t01 waits for its lease to expire, even though "paused" has no heartbeat


def test_a_hosted_tenant_whose_lease_moved_or_expired_is_stopped_at_once() -> None:
    rows = {**leases({"t00": "b", "t02": "a"}), **leases({"t01": "a"}, live=False)}
    plan = plan_round("a", ["t00", "t01", "t02"], rows, live_nodes=["a", "b"], hosted=["t00", "t01", "t02"])
    assert plan.stop == ("t00", "t01")


def test_a_node_above_its_share_hands_over_one_tenant_per_round_to_a_node_below_it() -> None:
    rows = leases(dict.fromkeys(TENANTS, "a"))
    plan = plan_round("a", TENANTS, rows, live_nodes=["a", "b", "c"], hosted=TENANTS)
    assert len(plan.release) == 1 and plan.claim == () and plan.stop == ()

    assert plan_round("a", TENANTS, rows, ["a", "b", "c"], TENANTS, max_release=3).release.__len__() == 3


def test_a_balanced_cluster_plans_nothing() -> None:
    owners = {sid: "abc"[i % 3] for i, sid in enumerate(TENANTS)}  # 4, 3, 3
    rows = leases(owners)
    for node in "abc":
        mine = [sid for sid, owner in owners.items() if owner == node]
        assert plan_round(node, TENANTS, rows, ["a", "b", "c"], mine).empty


def test_no_hand_over_while_free_tenants_remain_to_be_claimed() -> None:
    rows = leases({sid: "a" for sid in TENANTS[:8]})
    plan = plan_round("a", TENANTS, rows, live_nodes=["a", "b"], hosted=TENANTS[:8])
    assert plan.release == ()
