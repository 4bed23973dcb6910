"""Settings from the environment. Nothing secret is ever stored in a flow parameter or the database."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A mail task tries again after these pauses (seconds); then the mail waits for the outbox run.
MAIL_RETRY_SECONDS: tuple[int, ...] = (2, 10, 30)
GATEWAY_PORT = 4300  # the gateway (`dealflow gateway`, started by `up`): the address people open
PORTAL_PORT = 8765  # the customer portal's port on this machine (`dealflow portal`, `dealflow up`)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    security: str  # "starttls", "ssl" or "none"
    password_block: str = ""  # a Prefect Secret block holding the password, read when mail is sent


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    smtp: SmtpSettings | None
    finance_email: str  # "" : the company's email (``models.company``)
    mail_retry_seconds: tuple[int, ...] = MAIL_RETRY_SECONDS  # DEALFLOW_MAIL_RETRY_SECONDS
    # Every answer needs a one-time code or a signed session; DEALFLOW_ANSWER_CODES=off (a trial
    # by one person) makes the handle enough, and every answer is then recorded as unverified.
    answer_codes: bool = True
    # The base of every link in mail to customers (the portal, `dealflow portal`): DEALFLOW_PUBLIC_URL,
    # e.g. https://portal.example.com behind an HTTPS proxy; by default the portal on this machine.
    public_url: str = f"http://127.0.0.1:{PORTAL_PORT}"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"


def data_dir_of(env: Mapping[str, str]) -> Path:
    """The data folder: DEALFLOW_DATA_DIR, or ``data/`` in the checkout. Read alone (without the
    rest of the settings) where nothing else may fail, e.g. before Prefect is imported."""
    return Path(env.get("DEALFLOW_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def gateway_file(data_dir: Path) -> Path:
    """Where `dealflow up` records the address of the gateway it started."""
    return data_dir / "run" / "gateway-url"


def people_url(env: Mapping[str, str] = os.environ) -> str | None:
    """Where people open the Prefect UI: the gateway (DEALFLOW_GATEWAY_URL, or the one `dealflow up`
    started for this data folder); None if there is none (then only the server's own address)."""
    if env.get("DEALFLOW_GATEWAY_URL"):
        return env["DEALFLOW_GATEWAY_URL"].rstrip("/")
    try:
        return gateway_file(data_dir_of(env)).read_text().strip() or None
    except OSError:
        return None


# The Prefect UI dealflow links to is the newer one (served under /v2): it shows a wait's whole
# description above its form, and the gateway lays its Resume form out as a page (see
# ``dealflow.gateway``, UI_STYLE). The older UI's run page squeezes the description of a form
# with several fields to nothing, so no link dealflow prints opens it.
RUN_PAGE = "/v2/runs/flow-run/{run_id}"


def run_page(run_id: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The page of a deal's run, where its wait is answered (menu ⋮ → Resume): at the gateway, else
    at the Prefect server of PREFECT_API_URL; None without a run or a server to name."""
    base = people_url(env) or (env.get("PREFECT_API_URL", "").rstrip("/").removesuffix("/api") or None)
    if not run_id or not base:
        return None
    return base + RUN_PAGE.format(run_id=run_id)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    data_dir = data_dir_of(env)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'dealflow.db'}"
    smtp = None
    if env.get("SMTP_HOST"):
        from models.errors import ValidationError

        security = env.get("SMTP_SECURITY", "starttls").strip().lower()
        if security not in ("starttls", "ssl", "none"):
            # anything else would silently mean plain SMTP, sending the password unencrypted
            raise ValidationError("SMTP_SECURITY", f"must be starttls, ssl or none, got {security!r}")
        port = env.get("SMTP_PORT", "465" if security == "ssl" else "587")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValidationError("SMTP_PORT", f"must be a port number, got {port!r}")
        smtp = SmtpSettings(
            host=env["SMTP_HOST"], port=int(port),
            user=env.get("SMTP_USER", ""), password=env.get("SMTP_PASSWORD", ""),
            security=security,
            password_block=env.get("SMTP_PASSWORD_SECRET_BLOCK", ""),
        )
    return Settings(data_dir=data_dir, database_url=database_url, smtp=smtp,
                    finance_email=env.get("DEALFLOW_FINANCE_EMAIL", "").strip(),
                    mail_retry_seconds=_retry_seconds(env.get("DEALFLOW_MAIL_RETRY_SECONDS")),
                    answer_codes=_switch(env.get("DEALFLOW_ANSWER_CODES"), "DEALFLOW_ANSWER_CODES"),
                    public_url=_public_url(env.get("DEALFLOW_PUBLIC_URL")))


def _public_url(value: str | None) -> str:
    if value is None or not value.strip():
        return f"http://127.0.0.1:{PORTAL_PORT}"
    from urllib.parse import urlsplit

    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        from models.errors import ValidationError
        from models.text import shown

        raise ValidationError("DEALFLOW_PUBLIC_URL", f"must be an http(s) address such as https://portal.example.com "
                                                     f"(no query), got {shown(value)}")
    return url


UNVERIFIED_NOTE = ("answers are NOT verified (DEALFLOW_ANSWER_CODES=off): a handle is enough, "
                   "every answer is recorded as unverified")


def _switch(value: str | None, name: str) -> bool:
    if value is None or value.strip().lower() in ("", "on", "true", "1", "yes"):
        return True
    if value.strip().lower() in ("off", "false", "0", "no"):
        return False
    from models.errors import ValidationError
    from models.text import shown

    raise ValidationError(name, f"must be on or off, got {shown(value)}")


def _retry_seconds(value: str | None) -> tuple[int, ...]:
    if value is None:
        return MAIL_RETRY_SECONDS
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if len(parts) > 10 or not all(p.isdigit() and int(p) <= 3600 for p in parts):
        from models.errors import ValidationError
        from models.text import shown

        raise ValidationError("DEALFLOW_MAIL_RETRY_SECONDS",
                              f"must be up to 10 whole numbers of seconds (each at most 3600), "
                              f"comma-separated, e.g. 2,10,30; got {shown(value)}")
    return tuple(int(p) for p in parts)


def with_smtp_password(settings: Settings) -> Settings:
    """Settings whose SMTP password is read, at the moment of sending, from the Prefect Secret
    block named by SMTP_PASSWORD_SECRET_BLOCK (when SMTP_PASSWORD itself is not set). The password
    is never passed as a flow or task parameter, so it is in no run's inputs or logs."""
    smtp = settings.smtp
    if smtp is None or smtp.password or not smtp.password_block:
        return settings
    from .orchestration.blocks import secret  # only this path needs Prefect

    return replace(settings, smtp=replace(smtp, password=secret(smtp.password_block)))
