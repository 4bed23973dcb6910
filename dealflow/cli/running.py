"""Running it for real: ``up`` and ``down`` (the whole stack), and the long-running processes it
starts: ``executor``, ``portal`` and ``gateway``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from models import DomainError
from services.config import GATEWAY_PORT, PORTAL_PORT, UNVERIFIED_NOTE

from ..prefect_api import ensure_api
from .common import DealflowCommand, FilePath, emit, fail


@click.command(cls=DealflowCommand)
@click.option("--port", type=click.IntRange(1, 65535), default=4200, show_default=True,
              help="Port of the Prefect server (on this machine only: the machines' and administrators'; "
                   "the team opens the gateway).")
@click.option("--executors", "--workers", "executors", type=click.IntRange(1, 16), default=1, show_default=True,
              help="How many deal executors to start (each runs many deals in one process).")
@click.option("--portal-port", type=click.IntRange(1, 65535), default=PORTAL_PORT, show_default=True,
              help="Port of the customer portal.")
@click.option("--gateway-port", type=click.IntRange(1, 65535), default=GATEWAY_PORT, show_default=True,
              help="Port of the gateway: the address people open (each signs in as themselves).")
@click.option("--api-replicas", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Prefect API replicas (`prefect server start --no-services`) on --port, --port+1, ...; more "
                   "than one (or --redis) starts Prefect's scaled topology: one services process, Redis, Prefect "
                   "on PostgreSQL (PREFECT_SERVER_DATABASE_CONNECTION_URL), the gateway spreading over them.")
@click.option("--redis", default=None, metavar="URL", envvar="DEALFLOW_REDIS_URL",
              help="Redis for Prefect's messaging, ordering, leases and docket (redis://[:PASSWORD@]HOST:PORT/DB; "
                   "with a password, give it in DEALFLOW_REDIS_URL rather than on the command line, which other "
                   "users of the host can read); needed by the scaled topology.")
@click.option("--machines-port", type=click.IntRange(1, 65535), default=None,
              help="Scaled topology: the gateway's machines' door, the executors' and worker's Prefect API "
                   "(default: the port after the last replica).")
@click.option("--json", "as_json", is_flag=True, help="Print the addresses and pids as JSON.")
def up(port: int, executors: int, portal_port: int, gateway_port: int, api_replicas: int, redis: str | None,
       machines_port: int | None, as_json: bool) -> None:
    """Start a Prefect server, deploy prefect.yaml, a worker, deal executor(s), the customer
    portal and the gateway (the team's door to the Prefect UI), in the background. With
    --api-replicas N and --redis: N API replicas and Prefect's services process instead of one server."""
    from services.orchestration.topology import TopologyRefused

    from ..stack import up as stack_up

    try:
        info = stack_up(port=port, executors=executors, say=(lambda *_: None) if as_json else click.echo,
                        portal_port=portal_port, gateway_port=gateway_port, api_replicas=api_replicas,
                        redis=redis, machines_port=machines_port)
    except TopologyRefused as exc:
        raise DomainError(f"up: {exc}") from None
    except RuntimeError as exc:
        raise DomainError(f"up: {exc} (what did start is still running: `dealflow down` stops it)") from None
    from services.config import load_settings

    verified = load_settings().answer_codes
    if as_json:
        emit({**info, "answers_verified": verified}, True)
    elif not verified:
        click.echo(f"note: {UNVERIFIED_NOTE}")


@click.command(cls=DealflowCommand)
@click.option("--pool", default="dealflow-deals", show_default=True, help="The work pool of the deal deployment.")
@click.option("--slots", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Deals moving at the same time (threads); waiting deals take none.")
@click.option("--poll", type=click.FloatRange(0.05, 60), default=0.25, show_default=True,
              help="Seconds between looks for resumed or new runs.")
@click.option("--adopt", multiple=True, metavar="HOST",
              help="Also take over runs left running by executors of this (dead) host.")
@click.option("--status-file", type=FilePath(dir_okay=False, path_type=Path), default=None,
              help="Write the runs in progress here as JSON, for monitoring.")
def executor(pool: str, slots: int, poll: float, adopt: tuple[str, ...], status_file: Path | None) -> None:
    """Run the deal deployment's runs in this process until stopped (SIGTERM or Ctrl-C).

    Like `prefect worker start --pool dealflow-deals`, without a new process per run: a deal's run
    starts again after every answer, and this takes it from the answer to its next wait in about
    a second. Needs PREFECT_API_URL.
    """
    import logging

    from ..executor import serve

    if not os.environ.get("PREFECT_API_URL"):
        raise DomainError("executor: PREFECT_API_URL is not set; point it at your Prefect server's API")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dealflow").setLevel(logging.INFO)
    logging.getLogger("services.mailer").setLevel(logging.INFO)  # a line per email sent
    serve(pool=pool, slots=slots, poll=poll, status_file=status_file, adopt=adopt)


@click.command(cls=DealflowCommand)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (behind an HTTPS proxy, keep 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=PORTAL_PORT, show_default=True, help="Port to listen on.")
@click.option("--trusted-proxies", default="", metavar="ADDRESSES",
              help="The HTTPS proxy's address(es) (comma-separated), whose X-Forwarded-For names the "
                   "customer's address; none by default (then the connection's address counts).")
def portal(host: str, port: int, trusted_proxies: str) -> None:
    """Serve the customer portal until stopped: the pages behind the links in estimate and invoice
    emails, where the customer accepts an estimate, asks for changes or declines, and sees an
    invoice's balance. Links in mail start with DEALFLOW_PUBLIC_URL. Needs PREFECT_API_URL (the
    customer's answer resumes the deal's run) and the same secret key as the flows."""
    import logging

    from services import keys
    from services.config import load_settings

    from ..portal import serve as serve_portal

    settings = load_settings()
    keys.portal_secret(settings)  # no key: one clear line now, not an error per page
    ensure_api()  # a customer's answer resumes the deal's run: the Prefect API is needed from the start
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dealflow.portal").setLevel(logging.INFO)
    click.echo(f"portal: http://{host}:{port} (links in mail start with {settings.public_url}; "
               f"set DEALFLOW_PUBLIC_URL to change that)")
    serve_portal(host=host, port=port, settings=settings, trusted_proxies=trusted_proxies)


@click.command(cls=DealflowCommand)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (behind an HTTPS proxy, keep 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=GATEWAY_PORT, show_default=True,
              help="Port to listen on.")
@click.option("--upstream", default=None, metavar="URL[,URL...]",
              help="The Prefect server it fronts (default: PREFECT_API_URL without /api); several API replicas "
                   "comma-separated: requests go to the ready ones (their /api/ready) in turn.")
@click.option("--machines-port", type=click.IntRange(1, 65535), default=None,
              help="Also open the machines' door on this port: the executors', worker's and portal's "
                   "PREFECT_API_URL in front of the replicas (connections passed through whole; Prefect "
                   "checks their credential).")
@click.option("--machines-host", default="127.0.0.1", show_default=True,
              help="Address the machines' door listens on (a private network's, for executors on other hosts).")
@click.option("--public-url", default=None, metavar="URL",
              help="The address people open, e.g. https://prefect.example.com behind a TLS proxy "
                   "(DEALFLOW_GATEWAY_URL): its origin is the only one allowed to make changes, "
                   "and with https its cookies are Secure.")
@click.option("--trusted-proxies", default="", metavar="ADDRESSES",
              help="The HTTPS proxy's address(es) (comma-separated), whose X-Forwarded-For names the person's "
                   "address (failed sign-ins are counted by it); none by default.")
def gateway(host: str, port: int, upstream: str | None, machines_port: int | None, machines_host: str,
            public_url: str | None, trusted_proxies: str) -> None:
    """Serve the team's door to the Prefect UI and API: each person signs in with their handle
    and one-time code, reaches what their role allows, and every Resume is named and sealed here.
    Needs the Prefect server's credential (PREFECT_API_AUTH_STRING, or the one `dealflow up`
    keeps), the business database and the secret key."""
    from services import keys
    from services.config import load_settings

    from ..gateway import config_from_env
    from ..gateway import serve as serve_gateway

    keys.seal_key()  # no key: one clear line now
    if not load_settings().answer_codes and host not in ("127.0.0.1", "localhost", "::1"):
        raise DomainError(f"host: with DEALFLOW_ANSWER_CODES=off a handle is all it takes to sign in; the gateway "
                          f"then listens on this machine only (127.0.0.1), not on {host}")
    try:
        config = config_from_env(upstream, public_url)
    except ValueError as exc:
        raise DomainError(f"upstream: {exc}") from None
    if not config.credential:
        click.echo("note: no Prefect credential (PREFECT_API_AUTH_STRING): the Prefect server behind the gateway "
                   "must then be reachable by no one else", err=True)
    click.echo(f"gateway: http://{host}:{port} in front of {', '.join(config.upstreams)}")
    if machines_port:
        click.echo(f"machines' door: http://{machines_host}:{machines_port}/api (PREFECT_API_URL for executors, "
                   f"the worker and the portal)")
    serve_gateway(config, host=host, port=port, trusted_proxies=trusted_proxies,
                  machines=(machines_host, machines_port) if machines_port else None)


@click.command(cls=DealflowCommand)
def down() -> None:
    """Stop what `dealflow up` started (workers first, then the server)."""
    from ..stack import down as stack_down

    try:
        stopped = stack_down(say=click.echo)
    except RuntimeError as exc:  # a process that outlived SIGKILL (stuck in the kernel): said, exit 1
        fail(f"down: {exc}", 1)
    if not stopped:
        click.echo("nothing was running")
