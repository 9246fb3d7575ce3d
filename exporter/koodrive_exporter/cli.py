"""Command line: flags, logging, wiring of the rooms, signals."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import requests

from . import __version__, config, logs
from .auth import build_auth
from .client import KooDriveClient
from .demo import start_demo
from .errors import ConfigError
from .refresh import Refresher
from .server import ExporterServer, LandingInfo, WebApp
from .stats import ApiStats

DEFAULT_LISTEN = ":9877"
DEMO_LISTEN = "127.0.0.1:9877"

log = logging.getLogger(__name__)


@dataclass
class Exporter:
    """The wired exporter: refresher and HTTP server, ready to start."""

    refresher: Refresher
    server: ExporterServer
    session: requests.Session

    def start(self) -> None:
        """Serve HTTP and start refreshing (a first refresh begins at once)."""
        self.server.start()
        if self.refresher.background:
            self.refresher.start_background()
        else:
            self.refresher.trigger()

    def stop(self) -> None:
        """Stop serving and refreshing, and close the API session."""
        self.server.stop()
        self.refresher.stop()
        self.session.close()


def build_exporter(
    settings: config.Settings,
    host: str,
    port: int,
    *,
    telemetry_path: str = "/metrics",
    session: requests.Session | None = None,
) -> Exporter:
    """Wire client, refresher and server from validated settings."""
    session = session or requests.Session()
    session.headers["User-Agent"] = f"koodrive-exporter/{__version__}"
    stats = ApiStats()
    auth = build_auth(settings.koodrive.auth, settings.koodrive.user_id)
    client = KooDriveClient(
        settings.koodrive, session, auth, stats, selection=settings.users
    )
    refresher = Refresher(client.list_users, settings.refresh, stats)
    landing = LandingInfo(
        api_url=settings.koodrive.url,
        auth_kind=settings.koodrive.auth.kind,
        refresh_mode=settings.refresh.mode,
        min_interval_seconds=settings.refresh.min_interval_seconds,
    )
    app = WebApp(
        refresher,
        landing,
        telemetry_path=telemetry_path,
        scrape_timeout_seconds=settings.refresh.scrape_timeout_seconds,
        scrape_timeout_margin_seconds=settings.refresh.scrape_timeout_margin_seconds,
    )
    return Exporter(refresher, ExporterServer(app, host, port), session)


def parse_listen_address(value: str) -> tuple[str, int]:
    """`host:port`, `:port` (every interface) or `[v6]:port` -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address must be host:port, got {value!r}")
    host = host.strip("[]")
    return (host or "0.0.0.0"), int(port_text)  # noqa: S104 - ":port" means every interface


def build_parser() -> argparse.ArgumentParser:
    """The exporter's flags, named as Prometheus exporters name theirs."""
    parser = argparse.ArgumentParser(
        prog="koodrive-exporter",
        description="Export KooDrive per-user storage quotas and usage to Prometheus.",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        default="koodrive-exporter.yml",
        help="YAML configuration file (default: %(default)s)",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration, print every problem, and exit",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=None,
        help=f"address to serve on (default {DEFAULT_LISTEN}; demo {DEMO_LISTEN})",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="path of the metrics endpoint (default: %(default)s)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=sorted(logs.LEVELS),
        default="info",
        help="least severe level logged (default: %(default)s)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=logs.FORMATS,
        default="logfmt",
        help="log line format (default: %(default)s)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="ignore --config.file and read an embedded KooDrive simulator on loopback",
    )
    parser.add_argument(
        "--demo.users",
        dest="demo_users",
        type=int,
        default=200,
        help="users the demo's simulator generates (default: %(default)s)",
    )
    parser.add_argument(
        "--version", action="version", version=f"koodrive-exporter {__version__}"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter until SIGTERM or SIGINT; return the exit status."""
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    if args.config_check:
        return _check_config(args.config_file)

    try:
        host, port = _listen_address(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    with ExitStack() as resources:
        if args.demo:
            demo = resources.enter_context(start_demo(users=args.demo_users))
            settings = demo.settings
            log.info(
                "demo simulator started",
                extra={"fields": {"url": demo.simulator.url, "users": args.demo_users}},
            )
        else:
            try:
                settings = config.load_file(args.config_file)
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return 1
        try:
            exporter = build_exporter(
                settings, host, port, telemetry_path=args.telemetry_path
            )
        except OSError as exc:
            log.error(
                "cannot listen",
                extra={"fields": {"address": f"{host}:{port}", "error": exc.strerror}},
            )
            return 1
        _run_until_signalled(exporter, settings, args.telemetry_path)
    log.info("stopped")
    return 0


def _listen_address(args: argparse.Namespace) -> tuple[str, int]:
    path = args.telemetry_path
    if not path.startswith("/") or path in ("/", "/-/healthy", "/-/ready"):
        raise ValueError(f"--web.telemetry-path must be a path of its own: {path!r}")
    default = DEMO_LISTEN if args.demo else DEFAULT_LISTEN
    try:
        return parse_listen_address(args.listen_address or default)
    except ValueError as exc:
        raise ValueError(f"--web.listen-address: {exc}") from None


def _run_until_signalled(
    exporter: Exporter, settings: config.Settings, telemetry_path: str
) -> None:
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: stopping.set())
    exporter.start()
    log.info(
        "exporter started",
        extra={
            "fields": {
                "version": __version__,
                "port": exporter.server.port,
                "telemetry_path": telemetry_path,
                "api_url": settings.koodrive.url,
                "auth": settings.koodrive.auth.kind,
                "mode": settings.refresh.mode,
            }
        },
    )
    stopping.wait()
    log.info("shutting down")
    exporter.stop()


def _check_config(path: str) -> int:
    try:
        settings = config.load_file(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{path}: configuration is valid ({settings.koodrive.auth.kind} authentication)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
