"""Failure alerts: luigi's own e-mail, made safe, and a Slack-compatible webhook.

Nobody watches a scheduled backfill, so a failed month has to reach someone. Two channels:

* E-mail is luigi's built-in failure mail (``[email]`` / ``[smtp]``, see the commented block
  at the end of ``luigi.cfg``). luigi has no hook for its content, so ``install()`` wraps
  ``luigi.notifications.send_error_email`` (the one function the worker calls) to scrub
  secrets from the subject and body, to supply the SMTP password from ``TLC_SMTP_PASSWORD``
  for the duration of the send only, and to log a failed send instead of letting it end the
  run: luigi catches only ``OSError`` there (refused connection, rejected login), so a config
  error met while mailing, such as an unset ``${VAR}`` in ``[smtp]``, would escape the worker
  and turn one task's failure into a crash of the whole run.
* The webhook is ours: on a task's failure, one ``{"text": ...}`` POST to ``[tlc.alerts]
  webhook_url`` (env ``TLC_ALERT_WEBHOOK_URL``), bounded by a timeout and two retries, never
  raising into luigi; with ``summary = true``, also one summary when a range or catch-up
  run succeeds. The URL itself is a secret (Slack puts the token in the path): it is
  never logged and is scrubbed from every message.

Every alert passes through ``scrub()``: ``user:pass@`` in URLs, ``password=``-style pairs,
and the values of the secret environment variables are replaced by ``***``.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import luigi
import luigi.configuration
import luigi.notifications
from luigi.configuration.cfg_parser import LuigiConfigParser

from tlc.config import ConfigSection, env_or
from tlc.errors import PipelineError

logger = logging.getLogger("luigi-interface")

REDACTED = "***"
SECRET_ENV = ("PGPASSWORD", "TLC_SMTP_PASSWORD", "TLC_ALERT_WEBHOOK_URL")
WEBHOOK_RETRIES = 2
MAX_ERROR_CHARS = 500
# A value shorter than this is not redacted literally: replacing every "ab" in a message
# would shred it, and such a value is no secret worth the name.
MIN_SECRET_CHARS = 4

# scheme://user:pass@host -> scheme://***@host; the user part stops at the first / ? # or space.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#]*@")
# password=..., token=..., sig=... in query strings and libpq DSNs.
_SECRET_PAIR = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|access_token|api_?key|apikey|sig|signature|key)=([^\s&;,'\"]+)"
)


class AlertsConfig(ConfigSection):
    """``[tlc.alerts]``: where failure alerts go. The webhook URL is best kept in the environment."""

    section = "alerts"
    # significant=False keeps the URL (a secret) out of this object's repr and id.
    webhook_url = luigi.Parameter(
        default="", significant=False, description="Slack-compatible webhook; empty = off (env TLC_ALERT_WEBHOOK_URL)"
    )
    timeout_seconds = luigi.FloatParameter(default=5.0, description="per POST attempt; a stalled receiver fails it")
    backoff_seconds = luigi.FloatParameter(default=1.0, description="delay before the first retry, then doubled")
    summary = luigi.BoolParameter(
        default=False, description="also post one summary when a range or catch-up run succeeds (webhook only)"
    )

    def url(self) -> str:
        return env_or("TLC_ALERT_WEBHOOK_URL", self.webhook_url)


def _secret_values() -> list[str]:
    """Every value that must never leave the process, longest first so a URL beats its parts."""
    values = [os.environ.get(name, "") for name in SECRET_ENV]
    try:
        values.append(AlertsConfig().webhook_url)
    except Exception:  # noqa: BLE001 - a broken [tlc.alerts] must not stop the scrubbing of the rest
        logger.warning("alerts: [tlc.alerts] could not be read")
    found: set[str] = set()
    for value in values:
        if len(value) < MIN_SECRET_CHARS:
            continue
        found.add(value)
        parts = urllib.parse.urlsplit(value)
        if parts.scheme and parts.netloc:
            # A webhook's token is its path; the URL may also appear without scheme or re-quoted.
            found.add(value.split("://", 1)[1])
            secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
            if len(secret_part) >= 8:
                found.add(secret_part)
    return sorted(found, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` without URL credentials, ``password=``-style values, or any known secret value."""
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    return _SECRET_PAIR.sub(rf"\1={REDACTED}", text)


def error_line(error: BaseException | str) -> str:
    """The one line that says what went wrong.

    A ``PipelineError``'s message is written for the user, so it is the line; any other
    exception is a bug, whose type matters as much as its first line.
    """
    if isinstance(error, PipelineError):
        line = " ".join(str(error).split())
    elif isinstance(error, BaseException):
        first = next(iter(str(error).strip().splitlines()), "").strip()
        line = f"{type(error).__name__}: {first}" if first else type(error).__name__
    else:  # PROCESS_FAILURE and TIMEOUT events carry luigi's text, not an exception
        line = next(iter(str(error).strip().splitlines()), "").strip()
    if len(line) > MAX_ERROR_CHARS:
        line = line[: MAX_ERROR_CHARS - 3] + "..."
    return line


def failure_text(task: luigi.Task, error: BaseException | str, host: str | None = None) -> str:
    """The webhook message: which task, with which parameters, where, and why; already scrubbed."""
    host = host or socket.gethostname()
    return scrub(f"tlc-luigi: {task} FAILED on {host}\ntask id: {task.task_id}\nerror: {error_line(error)}")


def _attempt(url: str, body: bytes, timeout: float) -> bool | None:
    """One POST: True when delivered, False when worth retrying, None when retrying cannot help.

    Reasons are logged without the URL: urllib's errors carry it only as an attribute.
    """
    request = urllib.request.Request(  # noqa: S310 - scheme checked in post_webhook()
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return True
    except urllib.error.HTTPError as exc:
        logger.warning("alerts: webhook POST failed: HTTP %s", exc.code)
        return False if exc.code >= 500 or exc.code == 429 else None  # a wrong URL stays wrong
    except (urllib.error.URLError, OSError) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        logger.warning("alerts: webhook POST failed: %s", scrub(f"{type(cause).__name__}: {cause}"))
        return False


def post_webhook(text: str, settings: AlertsConfig | None = None) -> bool:
    """POST ``{"text": text}`` with two retries; never raises, so a task's outcome is its own.

    Worst case it holds the worker for 3 x timeout plus the backoffs.
    """
    try:
        settings = settings or AlertsConfig()
        url = settings.url()
        if not url:
            return False
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            logger.warning("alerts: webhook URL is not http(s); alert not sent")
            return False
        body = json.dumps({"text": text}).encode()
        delay = settings.backoff_seconds
        for attempt in range(1 + WEBHOOK_RETRIES):
            if attempt:
                time.sleep(delay)  # backoff between retries, not a wait for a condition
                delay *= 2
            outcome = _attempt(url, body, settings.timeout_seconds)
            if outcome is not False:
                return bool(outcome)
        logger.error("alerts: webhook alert not delivered after %d attempts", 1 + WEBHOOK_RETRIES)
    except Exception as exc:  # noqa: BLE001 - an alert must never change how the run ends
        logger.error("alerts: webhook alert failed: %s", scrub(f"{type(exc).__name__}: {exc}"))
    return False


def on_failure(task: luigi.Task, error: BaseException | str) -> None:
    """luigi event handler for FAILURE, BROKEN_TASK, PROCESS_FAILURE and TIMEOUT."""
    try:
        settings = AlertsConfig()
        if settings.url():
            post_webhook(failure_text(task, error), settings)
    except Exception as exc:  # noqa: BLE001 - luigi would log it with a traceback; keep it one line
        logger.error("alerts: could not send the failure alert: %s", scrub(type(exc).__name__))


def on_success(task: luigi.Task) -> None:
    """luigi event handler for SUCCESS: a range or catch-up that finished posts its summary.

    Off unless ``[tlc.alerts] summary = true``: a daily "all done" is welcome in some teams and
    noise in others. Only tasks with a ``run_summary()`` (IngestRange, IngestCatchUp) post one,
    so the months themselves stay quiet.
    """
    summary = getattr(task, "run_summary", None)
    if summary is None:
        return
    try:
        settings = AlertsConfig()
        if settings.summary and settings.url():
            post_webhook(scrub(f"tlc-luigi: {summary()} on {socket.gethostname()}"), settings)
    except Exception as exc:  # noqa: BLE001 - luigi would log it with a traceback; keep it one line
        logger.error("alerts: could not send the run summary: %s", scrub(type(exc).__name__))


@contextmanager
def smtp_password_from_env() -> Iterator[None]:
    """Put ``TLC_SMTP_PASSWORD`` into luigi's in-memory ``[smtp] password`` while mail is sent.

    luigi's cfg parser could read ``${TLC_SMTP_PASSWORD}`` itself, but an unset variable then
    raises from inside the worker at the moment a task fails. Set here, the password exists
    only in memory and only during the send; the previous value is restored after.
    """
    password = os.environ.get("TLC_SMTP_PASSWORD", "")
    config = luigi.configuration.get_config()
    if not password:
        yield
        return
    if not isinstance(config, LuigiConfigParser):
        logger.warning("alerts: TLC_SMTP_PASSWORD is applied with luigi's cfg parser only")
        yield
        return
    if "${" in password:  # luigi's env interpolation would expand it, and it has no escape
        logger.warning("alerts: TLC_SMTP_PASSWORD contains '${', which luigi's config cannot hold; not used")
        yield
        return
    try:
        previous: str | None = configparser.ConfigParser.get(config, "smtp", "password", raw=True)
    except (configparser.NoSectionError, configparser.NoOptionError):
        previous = None
    config.set("smtp", "password", password.replace("%", "%%"))  # '%' is luigi's interpolation
    try:
        yield
    finally:
        if previous is None:
            config.remove_option("smtp", "password")
        else:
            config.set("smtp", "password", previous)


def _safe_send_error_email(original: Callable[..., Any]) -> Callable[..., None]:
    def send_error_email(subject: str, message: str, additional_recipients: Any = None) -> None:
        try:
            with smtp_password_from_env():
                original(scrub(subject), scrub(message), additional_recipients)
        except Exception as exc:  # noqa: BLE001 - a broken mail setup must not end the run
            logger.error("alerts: failure e-mail not sent: %s", scrub(f"{type(exc).__name__}: {exc}"))

    send_error_email.tlc_alerts_wrapped = True  # type: ignore[attr-defined]
    send_error_email.__doc__ = "luigi's send_error_email, scrubbed, with the SMTP password from the environment."
    return send_error_email


FAILURE_EVENTS = (luigi.Event.FAILURE, luigi.Event.BROKEN_TASK, luigi.Event.PROCESS_FAILURE, luigi.Event.TIMEOUT)


def install() -> None:
    """Hook both channels into luigi; idempotent, so any import order is safe."""
    for event in FAILURE_EVENTS:
        luigi.Task.event_handler(event)(on_failure)  # a set per event: adding twice is a no-op
    luigi.Task.event_handler(luigi.Event.SUCCESS)(on_success)
    current = luigi.notifications.send_error_email
    if not getattr(current, "tlc_alerts_wrapped", False):
        luigi.notifications.send_error_email = _safe_send_error_email(current)
