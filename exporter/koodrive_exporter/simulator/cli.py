"""The `koodrive-simulator` command: serve a simulated KooDrive tenant until stopped."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from koodrive_exporter import __version__
from koodrive_exporter.simulator.app import API_PATH, Simulator, is_loopback
from koodrive_exporter.simulator.spaces import DEFAULT_DEPARTMENTS, DEFAULT_GROUPS
from koodrive_exporter.simulator.tenant import (
    UNITS,
    generate_users,
    load_users,
    scale_units,
)

LOG_FORMAT = "time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
EXIT_USAGE = 2

logger = logging.getLogger("koodrive_exporter.simulator")


def parse_listen(value: str) -> tuple[str, int]:
    """Split `host:port` or `[ipv6]:port` into its host and port."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected host:port, got {value!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port is not a number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value!r}")
    return host.strip("[]"), port


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0: {value}")
    return number


def _gigabytes(value: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a number of GB > 0: {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The simulator's command-line flags."""
    parser = argparse.ArgumentParser(
        prog="koodrive-simulator",
        description=(
            f"Serve a simulated KooDrive tenant on POST {API_PATH}, with the "
            "tenant overview and the department and group listings beside it, "
            "for running, testing and benchmarking koodrive-exporter offline."
        ),
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 8001),
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free one (default 127.0.0.1:8001)",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow listening on an address other machines can reach",
    )

    tenant = parser.add_argument_group("tenant")
    tenant.add_argument(
        "--users", type=_count, default=200, metavar="N", help="users to generate"
    )
    tenant.add_argument(
        "--seed", type=int, default=0, help="seed of generated users and groups"
    )
    tenant.add_argument(
        "--users-file",
        type=Path,
        metavar="PATH",
        help="serve users from a JSON or YAML file instead of generating them",
    )
    unit_names = list(UNITS)
    tenant.add_argument(
        "--quota-unit", choices=unit_names, default="bytes", help="unit of `quota`"
    )
    tenant.add_argument(
        "--used-unit", choices=unit_names, default="bytes", help="unit of `used`"
    )
    tenant.add_argument(
        "--departments",
        type=_positive,
        default=DEFAULT_DEPARTMENTS,
        metavar="N",
        help=f"departments the users are spread over (default {DEFAULT_DEPARTMENTS})",
    )
    tenant.add_argument(
        "--groups",
        type=_count,
        default=DEFAULT_GROUPS,
        metavar="N",
        help=f"team spaces to generate from the seed (default {DEFAULT_GROUPS})",
    )
    tenant.add_argument(
        "--tenant-capacity-gb",
        type=_gigabytes,
        metavar="X",
        help=(
            "tenant capacity in GB (default: a quarter more than the users' "
            "quotas and the groups' capacities, rounded up to 1000 GB)"
        ),
    )

    auth = parser.add_argument_group("authentication (none when no flag is given)")
    token = auth.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file", type=Path, metavar="PATH", help="token to accept"
    )
    token.add_argument("--token-env", metavar="NAME", help="variable holding the token")
    auth.add_argument("--app-id", help="AppId accepted in app-signed requests")
    secret = auth.add_mutually_exclusive_group()
    secret.add_argument(
        "--app-secret-file", type=Path, metavar="PATH", help="app secret to verify with"
    )
    secret.add_argument(
        "--app-secret-env", metavar="NAME", help="variable holding the app secret"
    )

    serving = parser.add_argument_group("serving")
    serving.add_argument(
        "--latency",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="delay added to every API request",
    )
    serving.add_argument(
        "--page-cap",
        type=_positive,
        metavar="N",
        help="serve at most N rows per page, whatever the requested limit",
    )
    serving.add_argument(
        "--max-page-size",
        type=_positive,
        default=100,
        metavar="N",
        help="largest `limit` accepted (default 100)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log level (default info)",
    )
    return parser


def _read_credential(path: Path | None, env_name: str | None, what: str) -> str | None:
    """A token or secret from a file or a variable, stripped; never logged."""
    if path is not None:
        value = path.read_text(encoding="utf-8").strip()
        source = str(path)
    elif env_name is not None:
        value = os.environ.get(env_name, "").strip()
        source = f"${env_name}"
    else:
        return None
    if not value:
        raise ValueError(f"the {what} in {source} is empty or missing")
    return value


def _tenant_users(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.users_file is not None:
        users = load_users(args.users_file)
    else:
        users = generate_users(args.users, seed=args.seed)
    if args.quota_unit == "bytes" and args.used_unit == "bytes":
        return users
    return scale_units(users, UNITS[args.quota_unit], UNITS[args.used_unit])


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGTERM or SIGINT; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    has_secret = args.app_secret_file is not None or args.app_secret_env is not None
    if (args.app_id is not None) != has_secret:
        parser.error("--app-id and --app-secret-file/--app-secret-env go together")
    logging.basicConfig(
        level=args.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr
    )

    host, port = args.listen
    try:
        users = _tenant_users(args)
        token = _read_credential(args.token_file, args.token_env, "token")
        app_secret = _read_credential(
            args.app_secret_file, args.app_secret_env, "app secret"
        )
        simulator = Simulator(
            users,
            host=host,
            port=port,
            token=token,
            app_id=args.app_id,
            app_secret=app_secret,
            max_page_size=args.max_page_size,
            latency_seconds=args.latency,
            allow_non_loopback=args.allow_non_loopback,
            departments=args.departments,
            groups=args.groups,
            seed=args.seed,
            tenant_capacity_gb=args.tenant_capacity_gb,
            quota_unit=UNITS[args.quota_unit],
            used_unit=UNITS[args.used_unit],
        )
    except (OSError, ValueError, TypeError, yaml.YAMLError) as error:
        logger.error("simulator cannot start reason=%r", str(error))
        return EXIT_USAGE
    simulator.page_cap = args.page_cap

    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        simulator.start()
    except OSError as error:
        logger.error(
            "simulator cannot listen host=%s port=%d reason=%r", host, port, str(error)
        )
        _restore_handlers(previous)
        return 1

    if not is_loopback(host):
        logger.warning("simulator reachable from other machines host=%s", host)
    logger.info(
        "simulator started url=%s users=%d auth=%s max_page_size=%d latency_seconds=%g "
        "page_cap=%s quota_unit=%s used_unit=%s departments=%d groups=%d "
        "tenant_capacity_gb=%s",
        simulator.url,
        len(users),
        ",".join(simulator.auth_kinds) or "none",
        args.max_page_size,
        args.latency,
        args.page_cap,
        args.quota_unit,
        args.used_unit,
        args.departments,
        args.groups,
        simulator.overview()["quota"],
    )
    try:
        while not stop.wait(1.0):
            continue
    finally:
        simulator.stop()
        _restore_handlers(previous)
    logger.info("simulator stopped requests=%d", simulator.request_count)
    return 0


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    """Make SIGTERM and SIGINT set `stop`; only the main thread may do so."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Logging here could deadlock on a lock the interrupted code holds.
        stop.set()

    return {
        signum: signal.signal(signum, request_stop)
        for signum in (signal.SIGTERM, signal.SIGINT)
    }


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
