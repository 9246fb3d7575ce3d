"""Command line: flags, logging, wiring of the rooms, signals."""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import __version__, config, logs
from .auth import build_auth
from .client import KooDriveClient
from .collectors import Source, build_sources
from .config import COLLECTORS
from .demo import start_demo
from .errors import ConfigError, CredentialError
from .exposition import ExporterInfoCollector, Exposition, exposition_of, render
from .refresh import Refresher
from .server import ExporterServer, LandingInfo, TenantInfo, WebApp
from .stats import ApiStats
from .webconfig import WebGuard

DEFAULT_LISTEN = ":9877"
DEMO_LISTEN = "127.0.0.1:9877"

log = logging.getLogger(__name__)


@dataclass
class Tenant:
    """One tenant's refresher and the HTTP session its client uses."""

    refresher: Refresher
    session: requests.Session


@dataclass
class Exporter:
    """The wired exporter: one refresher per tenant and the HTTP server."""

    server: ExporterServer
    app: WebApp
    settings: config.Settings
    tenants: dict[str, Tenant]
    config_file: Path | None = None
    collector_flags: dict[str, bool] = field(default_factory=dict)
    _reloading: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def refresher(self) -> Refresher:
        """The refresher of the single tenant (or of the first one)."""
        return next(iter(self.tenants.values())).refresher

    def start(self) -> None:
        """Serve HTTP and start refreshing (a first refresh begins at once)."""
        self.server.start()
        for tenant in self.tenants.values():
            _start_refreshing(tenant.refresher)

    def reload(self) -> None:
        """Re-read the configuration file; on any error keep the running one."""
        # SIGHUP and POST /-/reload may arrive together; one at a time.
        with self._reloading:
            self._reload()

    def _reload(self) -> None:
        if self.config_file is None:
            raise ConfigError([("config.file", "no configuration file to reload")])
        try:
            settings = config.load_file(self.config_file)
            settings = settings.with_collectors(self.collector_flags)
        except ConfigError as exc:
            log.error(
                "configuration reload failed, keeping the running one",
                extra={"fields": {"problems": _problems(exc)}},
            )
            raise
        wanted = _tenant_settings(settings)
        tenants: dict[str, Tenant] = {}
        for name, tenant_settings in wanted.items():
            existing = self.tenants.get(name)
            if existing is None:
                tenants[name] = _make_tenant(name, tenant_settings, settings)
                _start_refreshing(tenants[name].refresher)
                continue
            stats = existing.refresher.stats
            sources, session = _make_sources(tenant_settings, settings, stats)
            existing.refresher.reconfigure(sources, settings.refresh)
            existing.session.close()
            tenants[name] = Tenant(existing.refresher, session)
            # New settings show in the metrics now, not after the interval.
            _start_refreshing(existing.refresher, restart=False)
        for name, tenant in self.tenants.items():
            if name not in wanted:
                tenant.refresher.stop()
                tenant.session.close()
        self.tenants, self.settings = tenants, settings
        self.app.configure(
            {name: t.refresher for name, t in tenants.items()},
            _landing(settings),
            settings.refresh,
            _own_metrics(settings),
        )
        log.info("configuration reloaded", extra={"fields": {"file": self.config_file}})

    def stop(self) -> None:
        """Stop serving and refreshing, and close the API sessions."""
        self.server.stop()
        # Ask every refresher first, so their waits overlap instead of adding up.
        for tenant in self.tenants.values():
            tenant.refresher.stop(timeout=0)
        for tenant in self.tenants.values():
            tenant.refresher.stop(timeout=1.0)
            tenant.session.close()


def build_exporter(
    settings: config.Settings,
    host: str,
    port: int,
    *,
    telemetry_path: str = "/metrics",
    web_config_file: Path | None = None,
    config_file: Path | None = None,
    enable_lifecycle: bool = False,
    collector_flags: dict[str, bool] | None = None,
) -> Exporter:
    """Wire clients, refreshers and the server from validated settings."""
    collector_flags = collector_flags or {}
    settings = settings.with_collectors(collector_flags)
    tenants = {
        name: _make_tenant(name, tenant_settings, settings)
        for name, tenant_settings in _tenant_settings(settings).items()
    }
    guard = WebGuard(web_config_file)
    exporter: Exporter | None = None

    def reload() -> None:
        assert exporter is not None
        exporter.reload()

    app = WebApp(
        {name: tenant.refresher for name, tenant in tenants.items()},
        _landing(settings),
        telemetry_path=telemetry_path,
        scrape_timeout_seconds=settings.refresh.scrape_timeout_seconds,
        scrape_timeout_margin_seconds=settings.refresh.scrape_timeout_margin_seconds,
        reload=reload if enable_lifecycle else None,
        own_metrics=_own_metrics(settings),
    )
    server = ExporterServer(app, host, port, guard)
    exporter = Exporter(
        server,
        app,
        settings,
        tenants,
        config_file=config_file,
        collector_flags=collector_flags,
    )
    return exporter


def _own_metrics(settings: config.Settings) -> Exposition:
    collector = ExporterInfoCollector(__version__, len(settings.tenants))
    return exposition_of((render(collector),))


def _tenant_settings(settings: config.Settings) -> dict[str, config.KooDriveSettings]:
    if settings.multi_tenant:
        return dict(settings.tenants)
    assert settings.koodrive is not None
    return {"": settings.koodrive}


def _make_tenant(
    name: str, tenant_settings: config.KooDriveSettings, settings: config.Settings
) -> Tenant:
    stats = ApiStats()
    sources, session = _make_sources(tenant_settings, settings, stats)
    refresher = Refresher(sources, settings.refresh, stats, tenant=name)
    return Tenant(refresher, session)


def _make_sources(
    tenant_settings: config.KooDriveSettings,
    settings: config.Settings,
    stats: ApiStats,
) -> tuple[list[Source], requests.Session]:
    session = requests.Session()
    session.headers["User-Agent"] = f"koodrive-exporter/{__version__}"
    auth = build_auth(tenant_settings.auth, tenant_settings.user_id)
    client = KooDriveClient(
        tenant_settings, session, auth, stats, selection=settings.users
    )
    return build_sources(client, settings.collectors), session


def _start_refreshing(refresher: Refresher, *, restart: bool = True) -> None:
    if refresher.background and restart:
        refresher.start_background()
    else:
        refresher.trigger()


def _landing(settings: config.Settings) -> LandingInfo:
    tenants = {
        name: TenantInfo(
            api_url=tenant.url,
            auth_kind=tenant.auth.kind,
            collectors=settings.collectors,
        )
        for name, tenant in _tenant_settings(settings).items()
    }
    return LandingInfo(
        tenants=tenants,
        refresh_mode=settings.refresh.mode,
        min_interval_seconds=settings.refresh.min_interval_seconds,
    )


def _problems(error: ConfigError) -> str:
    return "; ".join(f"{key}: {message}" for key, message in error.problems)


def _count(text: str) -> int:
    """A whole number from 1 to 1,000,000, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000000")
    return value


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
        "--web.config.file",
        dest="web_config_file",
        default=None,
        help="web configuration file for TLS and basic authentication",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="accept POST /-/reload to re-read the configuration",
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
    for name in COLLECTORS:
        default = "on" if name == "users" else "off"
        parser.add_argument(
            f"--collector.{name}",
            dest=f"collector_{name}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"enable the {name} collector (default from config, else {default})",
        )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="ignore --config.file and read an embedded KooDrive simulator on loopback",
    )
    parser.add_argument(
        "--demo.users",
        dest="demo_users",
        type=_count,
        default=200,
        help="users the demo's simulator generates (default: %(default)s)",
    )
    parser.add_argument(
        "--demo.tenants",
        dest="demo_tenants",
        type=int,
        choices=range(1, 6),
        default=1,
        metavar="N",
        help="simulated tenants; from 2, each is served on /probe?tenant=demo-N",
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
        return _check_config(args)

    try:
        host, port = _listen_address(args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    with ExitStack() as resources:
        if args.demo:
            demo = resources.enter_context(
                start_demo(users=args.demo_users, tenants=args.demo_tenants)
            )
            settings, config_file = demo.settings, None
            for name, simulator in demo.simulators.items():
                log.info(
                    "demo simulator started",
                    extra={
                        "fields": {
                            "tenant": name or "default",
                            "url": simulator.url,
                            "users": args.demo_users,
                        }
                    },
                )
        else:
            config_file = Path(args.config_file)
            try:
                settings = config.load_file(config_file)
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return 1
        try:
            exporter = build_exporter(
                settings,
                host,
                port,
                telemetry_path=args.telemetry_path,
                web_config_file=_optional_path(args.web_config_file),
                config_file=config_file,
                enable_lifecycle=args.enable_lifecycle,
                collector_flags=_collector_flags(args),
            )
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        except OSError as exc:
            log.error(
                "cannot listen",
                extra={"fields": {"address": f"{host}:{port}", "error": exc.strerror}},
            )
            return 1
        _run_until_signalled(exporter, args.telemetry_path)
    log.info("stopped")
    return 0


def _collector_flags(args: argparse.Namespace) -> dict[str, bool]:
    flags = {name: getattr(args, f"collector_{name}") for name in COLLECTORS}
    return {name: value for name, value in flags.items() if value is not None}


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _listen_address(args: argparse.Namespace) -> tuple[str, int]:
    path = args.telemetry_path
    taken = ("/", "/probe", "/-/healthy", "/-/ready", "/-/reload")
    if not path.startswith("/") or path in taken:
        raise ValueError(f"--web.telemetry-path must be a path of its own: {path!r}")
    default = DEMO_LISTEN if args.demo else DEFAULT_LISTEN
    try:
        return parse_listen_address(args.listen_address or default)
    except ValueError as exc:
        raise ValueError(f"--web.listen-address: {exc}") from None


def _run_until_signalled(exporter: Exporter, telemetry_path: str) -> None:
    # Signal handlers only queue what to do; the main thread does it, so a
    # reload never runs inside a handler.
    actions: queue.SimpleQueue[str] = queue.SimpleQueue()
    signal.signal(signal.SIGTERM, lambda number, frame: actions.put("stop"))
    signal.signal(signal.SIGINT, lambda number, frame: actions.put("stop"))
    signal.signal(signal.SIGHUP, lambda number, frame: actions.put("reload"))
    exporter.start()
    settings = exporter.settings
    tenants = _tenant_settings(settings)
    log.info(
        "exporter started",
        extra={
            "fields": {
                "version": __version__,
                "port": exporter.server.port,
                "tls": exporter.server.tls,
                "telemetry_path": telemetry_path,
                "tenants": ",".join(name or "default" for name in tenants),
                "api_url": ",".join(tenant.url for tenant in tenants.values()),
                "collectors": ",".join(settings.collectors),
                "mode": settings.refresh.mode,
            }
        },
    )
    while actions.get() == "reload":
        try:
            exporter.reload()
        except ConfigError:
            continue
    log.info("shutting down")
    exporter.stop()


def _check_config(args: argparse.Namespace) -> int:
    try:
        settings = config.load_file(args.config_file)
        settings = settings.with_collectors(_collector_flags(args))
        if args.web_config_file:
            WebGuard(Path(args.web_config_file))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    tenants = _tenant_settings(settings)
    unreadable = _unreadable_credentials(tenants)
    if unreadable:
        print(ConfigError(unreadable), file=sys.stderr)
        return 1
    kinds = ", ".join(sorted({tenant.auth.kind for tenant in tenants.values()}))
    print(
        f"{args.config_file}: configuration is valid ({len(tenants)} tenant(s), "
        f"{kinds} authentication, collectors: {', '.join(settings.collectors)})"
    )
    return 0


def _unreadable_credentials(
    tenants: dict[str, config.KooDriveSettings],
) -> list[tuple[str, str]]:
    """Credentials that cannot be read now: every refresh would fail on them."""
    problems = []
    for name, tenant in tenants.items():
        prefix = f"tenants.{name}.auth" if name else "koodrive.auth"
        try:
            build_auth(tenant.auth, tenant.user_id).check()
        except CredentialError as exc:
            problems.append((prefix, str(exc)))
    return problems


if __name__ == "__main__":
    sys.exit(main())
