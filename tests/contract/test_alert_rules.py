"""The Prometheus alert rules: valid, passing their promtool unit tests, and those tests able to fail.

The path they take through a real Prometheus and Alertmanager to the alert
sink is tested in ``tests/integration/test_alert_path.py``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO

RULES = REPO / "deploy" / "prometheus" / "rules.yml"


def test_the_rules_are_valid_and_pass_their_unit_tests(system_tool: Callable[[str], str]) -> None:
    promtool = system_tool("promtool")
    subprocess.run([promtool, "check", "rules", str(RULES)], check=True, capture_output=True)
    done = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=REPO / "tests" / "prometheus",
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_tests_fail_when_a_rule_is_wrong(tmp_path: Path, system_tool: Callable[[str], str]) -> None:
    broken = tmp_path / "deploy" / "prometheus"
    broken.mkdir(parents=True)
    (broken / "rules.yml").write_text(RULES.read_text().replace("> 0.05", "> 0.5"))
    tests = tmp_path / "tests" / "prometheus"
    tests.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "prometheus" / "rules_test.yml", tests)
    done = subprocess.run([system_tool("promtool"), "test", "rules", "rules_test.yml"], cwd=tests, capture_output=True,
                          text=True)
    assert done.returncode != 0 and "WeirDataQualityDrop" in done.stdout + done.stderr
