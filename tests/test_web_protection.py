"""Endpoint protection: TLS, client certificates, basic auth, and live reloading."""

from __future__ import annotations

import base64
import os
import socket
import ssl
from pathlib import Path

import bcrypt
import pytest
import requests

from certs import Certificates, make_certificates
from helpers import make_settings
from koodrive_exporter.cli import build_exporter
from koodrive_exporter.errors import ConfigError
from koodrive_exporter.simulator.app import Simulator
from koodrive_exporter.webconfig import WebGuard, parse_web_config


def bcrypt_hash(password: str) -> str:
    """A cheap bcrypt hash (few rounds keep the tests fast)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_users(path: Path, user: str, password: str) -> None:
    """A web config with one basic-auth user."""
    hashed = bcrypt_hash(password)
    path.write_text(f"basic_auth_users:\n  {user}: '{hashed}'\n", encoding="utf-8")


def touch_later(path: Path) -> None:
    """Move the file's mtime forward so a change is seen even within one tick."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


def start(simulator: Simulator, token_file: Path, web_config: Path, started: list):
    exporter = build_exporter(
        make_settings(simulator.url, token_file),
        "127.0.0.1",
        0,
        web_config_file=web_config,
    )
    exporter.start()
    started.append(exporter)
    return exporter.server.port


@pytest.fixture
def exporters():
    started: list = []
    yield started
    for exporter in started:
        exporter.stop()


def test_tls_serves_metrics_to_a_client_that_trusts_the_ca(
    simulator, token_file, tmp_path, certs, exporters
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n"
        f"  key_file: {certs.server_key}\n",
        encoding="utf-8",
    )
    port = start(simulator, token_file, web, exporters)

    response = requests.get(
        f"https://127.0.0.1:{port}/metrics", verify=certs.ca, timeout=10
    )

    assert response.status_code == 200
    assert "koodrive_up" in response.text
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_required_client_certificates_are_enforced(
    simulator, token_file, tmp_path, certs, exporters
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n"
        f"  key_file: {certs.server_key}\n  client_ca_file: {certs.ca}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\n",
        encoding="utf-8",
    )
    port = start(simulator, token_file, web, exporters)
    url = f"https://127.0.0.1:{port}/-/healthy"

    with_cert = requests.get(
        url, verify=certs.ca, cert=(certs.client_cert, certs.client_key), timeout=10
    )
    assert with_cert.status_code == 200
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, verify=certs.ca, timeout=5)


def test_the_minimum_tls_version_is_enforced(
    simulator, token_file, tmp_path, certs, exporters
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n"
        f"  key_file: {certs.server_key}\n  min_version: TLS13\n",
        encoding="utf-8",
    )
    port = start(simulator, token_file, web, exporters)
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_basic_auth_guards_every_endpoint(
    simulator, token_file, tmp_path, exporters
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret')}'\n",
        encoding="utf-8",
    )
    port = start(simulator, token_file, web, exporters)
    base = f"http://127.0.0.1:{port}"

    for path in ("/metrics", "/", "/-/healthy", "/-/ready"):
        denied = requests.get(base + path, timeout=10)
        assert denied.status_code == 401
        assert denied.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.get(base + "/metrics", auth=("prometheus", "nope"), timeout=10)
    unknown = requests.get(base + "/metrics", auth=("nobody", "s3cret"), timeout=10)
    right = requests.get(base + "/metrics", auth=("prometheus", "s3cret"), timeout=10)

    assert wrong.status_code == 401
    assert unknown.status_code == 401
    assert right.status_code == 200
    assert "koodrive_up" in right.text


def test_a_changed_web_config_is_used_and_a_broken_one_is_refused(
    simulator, token_file, tmp_path, exporters
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"basic_auth_users:\n  a: '{bcrypt_hash('one')}'\n", encoding="utf-8"
    )
    port = start(simulator, token_file, web, exporters)
    url = f"http://127.0.0.1:{port}/-/healthy"
    assert requests.get(url, auth=("a", "one"), timeout=10).status_code == 200

    web.write_text(
        f"basic_auth_users:\n  a: '{bcrypt_hash('two')}'\n", encoding="utf-8"
    )
    touch_later(web)
    assert requests.get(url, auth=("a", "one"), timeout=10).status_code == 401
    assert requests.get(url, auth=("a", "two"), timeout=10).status_code == 200

    web.write_text("basic_auth_users: [not, a, mapping]\n", encoding="utf-8")
    touch_later(web)
    assert requests.get(url, auth=("a", "two"), timeout=10).status_code == 200


def test_web_config_errors_name_their_keys(tmp_path: Path) -> None:
    text = (
        "tls_server_config:\n  cert_file: x.pem\n  min_version: TLS99\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  colour: red\n"
        "basic_auth_users:\n  alice: plaintext\nextra: 1\n"
    )

    with pytest.raises(ConfigError) as raised:
        parse_web_config(text, tmp_path)

    keys = {key for key, _ in raised.value.problems}
    assert {
        "tls_server_config.key_file",
        "tls_server_config.min_version",
        "tls_server_config.client_ca_file",
        "tls_server_config.colour",
        "basic_auth_users.alice",
        "extra",
    } <= keys


def test_htpasswd_style_2y_hashes_are_accepted(tmp_path: Path) -> None:
    hashed = bcrypt_hash("pw").replace("$2b$", "$2y$", 1)
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  u: '{hashed}'\n", encoding="utf-8")
    guard = WebGuard(web)

    header = "Basic " + base64.b64encode(b"u:pw").decode()
    assert guard.authorized(header)
    assert not guard.authorized("Basic " + base64.b64encode(b"u:bad").decode())
    assert not guard.authorized("Basic %%%")
