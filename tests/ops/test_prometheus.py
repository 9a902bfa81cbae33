"""Prometheus rules and the Grafana dashboard: valid, tested, and naming only metrics that exist.

`promtool check rules` validates deploy/prometheus/alerts.yml; `promtool test rules` runs
tests/ops/prometheus/alerts.test.yml (every alert fires on the series that mean trouble, after its
`for`, with its annotations rendered, and not on healthy series). The dashboard's queries are
checked by promtool too (as recording rules). Then a real bridge is started and every metric name
the rules and the dashboard use must be one its `/metrics` serves (`up` excepted: Prometheus
makes it per scrape), and every bridge_* metric it serves must be on the dashboard.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import REPO, BridgeRun, clean_env, free_port, http, wait_until

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "tests" / "ops" / "prometheus" / "alerts.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "baileys-bridge.json"
SCRAPE = REPO / "deploy" / "prometheus" / "prometheus.yml"
KEY = "prometheus-test-key-0123456789"
#: Series Prometheus itself adds to every scrape; no exporter serves them.
SCRAPE_SERIES = {"up"}
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (.ci/run installs Debian's `prometheus` package)")
    return found


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels, keywords or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if not call and name not in _KEYWORDS:
            names.add(name)
    return names


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced by values Prometheus accepts."""
    return expr.replace("$__rate_interval", "5m").replace("$instance", ".*")


def rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for panel in dashboard_panels() for t in panel["targets"]]


def test_the_metric_name_extraction_reads_promql_as_prometheus_does() -> None:
    assert metric_names(rule_exprs()["BridgeDiskLow"]) == {"bridge_disk_free_bytes", "bridge_disk_min_free_bytes"}
    assert metric_names(rule_exprs()["BridgeRuntimeCrashLoop"]) == {"bridge_runtime_restarts_total"}
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{instance=~"a|b", le!="1"}[5m]))) / on (job) y offset 1h'
    ) == {"x_bucket", "y"}


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in result.stdout


def test_every_alert_fires_when_it_should_and_only_then() -> None:
    result = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == set(rule_exprs()), "every alert has a unit test that makes it fire"


def test_the_rules_cover_what_issue_20_asks_for() -> None:
    rules = rule_exprs()
    assert "bridge_sessions" in rules["BridgeSessionNotOpen"]
    assert "bridge_runtime_restarts_total" in rules["BridgeRuntimeCrashLoop"]
    assert "bridge_monitor_restores_total" in rules["BridgeRestoreHappened"]
    assert "deriv(bridge_webhook_backlog" in rules["BridgeWebhookBacklogGrowing"]
    assert "bridge_disk_free_bytes" in rules["BridgeDiskLow"]


def test_the_dashboard_is_well_formed_and_its_queries_parse(tmp_path: Path) -> None:
    document = json.loads(DASHBOARD.read_text())
    panels = document["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        mine = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
    for panel in dashboard_panels():
        assert panel["targets"] and panel["description"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in document["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)} for i, expr in enumerate(dashboard_exprs())
    ]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(recording))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeRun]:
    """A real bridge serving /metrics without a key (as deploy/prometheus/prometheus.yml expects)."""
    work = tmp_path_factory.mktemp("metrics")
    env = clean_env(BRIDGE_AUTH_ROOT=str(work / "auth"), BRIDGE_API_KEYS=KEY, BRIDGE_METRICS_PUBLIC="true",
                    BRIDGE_MONITOR_MIN_FREE_MB="300")
    with BridgeRun(work, env) as run:
        yield run
        assert run.stop() == 0


@pytest.fixture(scope="module")
def exposition(bridge: BridgeRun) -> tuple[Path, str]:
    """(auth root, /metrics text) of the real bridge."""
    status, body = http("GET", f"{bridge.base}/metrics")
    assert status == 200
    return Path(bridge.env["BRIDGE_AUTH_ROOT"]), body.decode()


@pytest.fixture(scope="module")
def served_metrics(exposition: tuple[Path, str]) -> set[str]:
    """Every series name the bridge's /metrics can serve (from its HELP/TYPE families)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition[1]):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_disk_gauges_measure_the_roots(exposition: tuple[Path, str]) -> None:
    auth_root, text = exposition
    samples = {(s.name, s.labels.get("root")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    st = os.statvfs(auth_root)
    assert samples[("bridge_disk_min_free_bytes", None)] == 300 * 1024 * 1024
    assert samples[("bridge_disk_size_bytes", "auth")] == st.f_blocks * st.f_frsize
    assert samples[("bridge_disk_inodes", "auth")] == st.f_files
    assert abs(samples[("bridge_disk_free_bytes", "auth")] - st.f_bavail * st.f_frsize) < 1 << 30
    assert ("bridge_disk_free_bytes", "state") in samples


def test_every_metric_the_rules_and_dashboard_name_is_served(served_metrics: set[str]) -> None:
    used = {name for expr in [*rule_exprs().values(), *map(grafana_to_promql, dashboard_exprs())]
            for name in metric_names(expr)}
    assert {"bridge_sessions", "bridge_disk_free_bytes", "bridge_webhook_backlog"} <= used
    missing = used - served_metrics - SCRAPE_SERIES
    assert not missing, f"named in deploy/ but not served by /metrics: {sorted(missing)}"


def test_every_bridge_metric_is_on_the_dashboard(served_metrics: set[str]) -> None:
    shown = {name for expr in map(grafana_to_promql, dashboard_exprs()) for name in metric_names(expr)}
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in served_metrics if n.startswith("bridge_")}
    shown_families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in shown}
    missing = families - shown_families
    assert not missing, f"bridge metrics without a panel in {DASHBOARD.relative_to(REPO)}: {sorted(missing)}"


def test_a_real_prometheus_scrapes_the_bridge_and_evaluates_every_rule(bridge: BridgeRun, tmp_path: Path) -> None:
    """deploy/prometheus/prometheus.yml with only the target and the intervals changed."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (.ci/run installs Debian's `prometheus` package)")
    config = yaml.safe_load(SCRAPE.read_text())
    job = config["scrape_configs"][0]
    assert job["job_name"] == "baileys-bridge" and job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{bridge.port}"]}]
    job["scrape_interval"] = "1s"
    config["global"] = {"evaluation_interval": "1s"}
    config["rule_files"] = [str(SCRAPE.parent / name) for name in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    api = f"http://127.0.0.1:{free_port()}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address={api.removeprefix('http://')}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    try:
        def query(path: str) -> Any:
            status, body = http("GET", f"{api}/api/v1/{path}")
            assert status == 200, body
            return json.loads(body)["data"]

        def evaluated() -> bool:
            try:
                groups = query("rules")["groups"]
            except OSError:
                return False
            rules = [r for g in groups for r in g["rules"]]
            return bool(rules) and all(not r["lastEvaluation"].startswith("0001") for r in rules) and bool(
                query('query?query=bridge_disk_free_bytes{root="auth"}')["result"])

        wait_until(evaluated, "Prometheus to scrape the bridge and evaluate the rules")
        targets = query("targets")["activeTargets"]
        assert [(t["labels"]["job"], t["health"]) for t in targets] == [("baileys-bridge", "up")], targets
        rules = [r for g in query("rules")["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == set(rule_exprs())
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        firing = {r["name"] for r in rules if r["state"] != "inactive"}
        assert firing == set(), f"a fresh, healthy bridge raises no alert: {firing}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
