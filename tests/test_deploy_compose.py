"""deploy/compose.yaml: PostgreSQL and two mailbot instances that agree with their config.

Docker Compose is not needed: the file is read as YAML (anchors and merge keys resolved
as Compose resolves them) and checked against deploy/compose.toml, which mailbot's own
loader reads with the environment the file gives the instances.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mailbot.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
yaml = pytest.importorskip("yaml")


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def instances(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in data["services"].items() if "build" in s}


def test_postgres_and_two_instances_of_the_image() -> None:
    """Two services build the project's Dockerfile and wait for a PostgreSQL service."""
    data = compose()
    found = instances(data)
    assert len(found) == 2
    assert data["services"]["postgres"]["image"].startswith("postgres:")
    for service in found.values():
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert context == ROOT and (context / service["build"]["dockerfile"]).is_file()
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    published = [p.split(":")[1] for s in found.values() for p in s["ports"]]
    assert len(published) == len(set(published)), "two instances publish one host port"


def test_each_instance_reaches_the_database_its_config_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MAILBOT_DATABASE names the postgres service, its user and database; the mounted
    config reads the password and the shared reply-token secret from the compose secrets."""
    data = compose()
    pg = data["services"]["postgres"]
    for name, service in instances(data).items():
        url = service["environment"]["MAILBOT_DATABASE"]
        parts = urlsplit(url)
        assert parts.scheme == "postgresql" and parts.hostname == "postgres", name
        assert parts.password is None, "the password belongs in a secret, not the URL"
        assert parts.username == pg["environment"]["POSTGRES_USER"]
        assert parts.path == "/" + pg["environment"]["POSTGRES_DB"]
        mounts = dict(v.rsplit(":", 2)[:2] for v in service["volumes"] if v.startswith("./"))
        config_file = DEPLOY / next(src for src, dst in mounts.items()
                                    if dst == "/etc/mailbot/mailbot.toml")
        monkeypatch.setenv("MAILBOT_DATABASE", url)
        config = load_config(config_file)
        assert config.storage.url == url
        secrets = {f"/run/secrets/{s}" for s in service["secrets"]}
        assert str(config.storage.password_file) in secrets
        assert str(config.auth.secret_file) in secrets
        assert pg["environment"]["POSTGRES_PASSWORD_FILE"] in secrets
        container_ports = {p.rsplit(":", 1)[1] for p in service["ports"]}
        assert config.http.listen is not None, "the image's HEALTHCHECK needs [http]"
        assert {str(config.smtp_in.port), config.http.listen.rsplit(":", 1)[1]} \
            == container_ports, name
    for secret in data["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text(encoding="utf-8")
