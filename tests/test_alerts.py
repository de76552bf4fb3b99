"""Failure alerts end to end: luigi runs a failing task, a real SMTP server and a real HTTP
receiver on 127.0.0.1 get exactly what an operator would, and no secret reaches either."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import luigi
import luigi.configuration
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from luigi.execution_summary import _summary_dict

from tlc import alerts
from tlc.errors import PipelineError

SECRET = "s3cret"  # noqa: S105 - fake secrets: the tests hunt for them in every alert
SMTP_USER = "alerts"
SMTP_PASSWORD = "smtp-pa55%word"  # noqa: S105 - the % is luigi's interpolation character: must survive
WEBHOOK_TOKEN = "T000/B000/tok3nXYZ"  # noqa: S105


class LeakError(PipelineError):
    """An expected failure whose message carries a URL with credentials, as a careless raise would."""


class Failing(luigi.Task):
    """Never complete, so every build runs it."""

    case = luigi.Parameter()

    def complete(self) -> bool:
        return False


class LeakyFetch(Failing):
    def run(self) -> None:
        raise LeakError(f"cannot fetch http://user:{SECRET}@example.invalid/x: HTTP 503")


class Buggy(Failing):
    def run(self) -> None:
        webhook = os.environ["TLC_ALERT_WEBHOOK_URL"]
        raise RuntimeError(f"connect failed: password={SECRET} smtp={SMTP_PASSWORD} hook={webhook}\nsecond line")


class Downstream(luigi.WrapperTask):
    """Never runs when its requirement fails: it must not alert on its own."""

    case = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return LeakyFetch(case=self.case)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """A real SMTP server (aiosmtpd) that records each message and each login."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.raw: list[bytes] = []
        self.logins: list[tuple[str, str]] = []
        self.port = free_port()
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            authenticator=self.authenticate,
            auth_require_tls=False,
        )
        self.controller.start()

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=login == SMTP_USER and password == self.password, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.raw.append(envelope.content)
        return "250 OK"

    def messages(self) -> list[tuple[str, str]]:
        """(subject, decoded body) of each message; the body is base64 on the wire."""
        out = []
        for raw in self.raw:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            body = "".join(part.get_content() for part in msg.walk() if part.get_content_type() == "text/plain")
            out.append((str(msg["Subject"]), body))
        return out

    def close(self) -> None:
        self.controller.stop()


class Receiver:
    """A real HTTP webhook receiver: records POST bodies; answers ``status``, or stalls."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.status = 200
        self.stall = False
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.stall:
                    receiver.release.wait(10)  # until teardown: longer than any client timeout
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/services/{WEBHOOK_TOKEN}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def texts(self) -> list[str]:
        return [json.loads(b)["text"] for b in self.bodies]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(SMTP_PASSWORD)
    yield box
    box.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alerting(
    cfg: dict[tuple[str, str], str], mailbox: Mailbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> dict[tuple[str, str], str]:
    """Both channels on, as the alerts block of luigi.cfg documents them, secrets from the env."""
    cfg.update(
        {
            ("email", "receiver"): "ops@example.com",
            ("email", "force_send"): "true",  # luigi mails only when stdout is not a tty; pytest -s may be one
            ("smtp", "host"): "127.0.0.1",
            ("smtp", "port"): str(mailbox.port),
            ("smtp", "no_tls"): "true",
            ("smtp", "username"): SMTP_USER,
            ("smtp", "timeout"): "5",
            ("tlc.alerts", "timeout_seconds"): "0.5",
            ("tlc.alerts", "backoff_seconds"): "0.05",
        }
    )
    monkeypatch.setenv("TLC_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("TLC_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("PGPASSWORD", "pg-Pa55word")
    alerts.install()
    return cfg


def build(task: luigi.Task) -> tuple[luigi.LuigiStatusCode, set[str], float]:
    """Run ``task`` as the CLI would (local scheduler, one worker): status, failed ids, seconds."""
    started = time.monotonic()
    result = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="WARNING")
    failed = {t.task_id for t in _summary_dict(result.worker)["failed"]}
    return result.status, failed, time.monotonic() - started


def assert_no_secret(text: str) -> None:
    for secret in (SECRET, SMTP_PASSWORD, "pa55", WEBHOOK_TOKEN, "tok3n"):
        assert secret not in text


def test_pipeline_error_alerts_once_by_mail_and_webhook(alerting: dict, mailbox: Mailbox, receiver: Receiver) -> None:
    failing = LeakyFetch(case="pipeline")
    status, failed, _ = build(Downstream(case="pipeline"))

    assert status == luigi.LuigiStatusCode.FAILED
    assert failed == {failing.task_id}

    [(subject, body)] = mailbox.messages()  # one failure, one mail: the pending wrapper sends none
    assert "LeakyFetch" in subject and "FAILED" in subject
    assert "cannot fetch http://***@example.invalid/x: HTTP 503" in body
    assert mailbox.logins == [(SMTP_USER, SMTP_PASSWORD)]  # the password came from the environment
    for raw in mailbox.raw:
        assert_no_secret(raw.decode(errors="replace"))
    assert_no_secret(subject + body)

    [text] = receiver.texts()
    assert failing.task_id in text
    assert "LeakyFetch(case=pipeline)" in text
    assert "error: cannot fetch http://***@example.invalid/x: HTTP 503" in text
    assert socket.gethostname() in text
    assert_no_secret(text)

    # The password lived in luigi's config only while the mail was sent.
    assert not luigi.configuration.get_config().has_option("smtp", "password")


def test_unexpected_exception_alerts_type_and_first_line(alerting: dict, mailbox: Mailbox, receiver: Receiver) -> None:
    task = Buggy(case="bug")
    status, failed, _ = build(task)

    assert status == luigi.LuigiStatusCode.FAILED
    assert failed == {task.task_id}
    [(subject, body)] = mailbox.messages()
    assert "Buggy" in subject
    assert "RuntimeError: connect failed: password=***" in body
    assert_no_secret(subject + body)

    [text] = receiver.texts()
    assert task.task_id in text
    assert "error: RuntimeError: connect failed: password=*** smtp=*** hook=***" in text
    assert "second line" not in text
    assert_no_secret(text)


@pytest.mark.parametrize("fault", ["down", "500", "stall"])
def test_broken_webhook_changes_nothing_but_the_log(
    fault: str, alerting: dict, mailbox: Mailbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fault == "down":
        monkeypatch.setenv("TLC_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/services/{WEBHOOK_TOKEN}")
    elif fault == "500":
        receiver.status = 500
    else:
        receiver.stall = True
    task = LeakyFetch(case=f"webhook-{fault}")

    status, failed, seconds = build(task)

    assert status == luigi.LuigiStatusCode.FAILED
    assert failed == {task.task_id}
    assert len(mailbox.messages()) == 1  # the other channel still works
    # 1 try + 2 retries, each bounded by the 0.5 s timeout, plus 0.05 + 0.1 s of backoff.
    assert len(receiver.bodies) == (0 if fault == "down" else 3)
    assert seconds < 5


def test_rejected_smtp_login_is_logged_not_raised(
    alerting: dict, mailbox: Mailbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLC_SMTP_PASSWORD", "wrong-password")
    task = LeakyFetch(case="smtp-auth")

    status, failed, _ = build(task)

    assert status == luigi.LuigiStatusCode.FAILED
    assert failed == {task.task_id}
    assert set(mailbox.logins) == {(SMTP_USER, "wrong-password")}  # smtplib tries PLAIN, then LOGIN
    assert mailbox.raw == []
    assert len(receiver.texts()) == 1


def test_unset_env_in_smtp_config_does_not_crash_the_run(
    alerting: dict, mailbox: Mailbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """luigi's own ``password = ${VAR}`` with VAR unset raises ValueError out of luigi.build."""
    monkeypatch.delenv("TLC_SMTP_PASSWORD")
    monkeypatch.delenv("TLC_TEST_UNSET_PASSWORD", raising=False)
    config = luigi.configuration.get_config()
    config.set("smtp", "password", "${TLC_TEST_UNSET_PASSWORD}")
    task = LeakyFetch(case="smtp-unset-env")
    try:
        status, failed, _ = build(task)
    finally:
        config.remove_option("smtp", "password")

    assert status == luigi.LuigiStatusCode.FAILED
    assert failed == {task.task_id}
    assert mailbox.raw == []
    assert len(receiver.texts()) == 1


def test_no_channel_configured_sends_nothing(cfg: dict, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLC_ALERT_WEBHOOK_URL", raising=False)
    alerts.install()
    task = LeakyFetch(case="quiet")

    status, failed, _ = build(task)

    assert status == luigi.LuigiStatusCode.FAILED
    assert failed == {task.task_id}
    assert receiver.bodies == []


def test_scrub() -> None:
    assert alerts.scrub("get https://u:p%40ss@host:8/a?b=1 ok") == "get https://***@host:8/a?b=1 ok"
    assert alerts.scrub("dsn host=db password=hunter2 user=x") == "dsn host=db password=*** user=x"
    assert alerts.scrub("?token=abc&x=1") == "?token=***&x=1"
    assert alerts.scrub("mail me@example.com at http://host/a@b") == "mail me@example.com at http://host/a@b"


def test_scrub_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "pg-Pa55word")
    monkeypatch.setenv("TLC_ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T1/B2/xyzzy")
    text = alerts.scrub("pg-Pa55word; posted to hooks.example.com/services/T1/B2/xyzzy and /services/T1/B2/xyzzy")
    assert text == "***; posted to *** and ***"


class Summarised(luigi.Task):
    """A run with a summary, like IngestRange: done once it has run."""

    case = luigi.Parameter()
    ran: ClassVar[set[str]] = set()

    def complete(self) -> bool:
        return self.case in self.ran

    def run(self) -> None:
        self.ran.add(self.case)

    def run_summary(self) -> str:
        return f"{self} done: 3 month(s) of yellow, token={SECRET}"


@pytest.mark.parametrize("enabled", [True, False])
def test_run_summary_is_posted_once_when_enabled(alerting: dict, receiver: Receiver, enabled: bool) -> None:
    alerting["tlc.alerts", "summary"] = str(enabled).lower()
    task = Summarised(case=f"summary-{enabled}")

    status, failed, _ = build(task)
    again, _, _ = build(task)  # found done: nothing runs, nothing is posted

    assert status == again == luigi.LuigiStatusCode.SUCCESS and failed == set()
    texts = receiver.texts()
    if not enabled:
        assert texts == []
        return
    [text] = texts
    expected = "tlc-luigi: Summarised(case=summary-True) done: 3 month(s) of yellow, token=***"
    assert text == f"{expected} on {socket.gethostname()}"
    assert_no_secret(text)


def test_range_and_catch_up_summaries_name_what_they_covered() -> None:
    from tasks import IngestCatchUp, IngestRange

    text = IngestRange(colors="yellow,green", start="2021-11", stop="2022-01").run_summary()
    assert "done: 6 month(s) of yellow, green, 2021-11 to 2022-01, complete in every sink" in text
    catch_up = IngestCatchUp(colors="fhv", window=2, until="2021-02")
    catch_up._published, catch_up._unpublished = [], ["fhv 2021-02"]  # as requires() leaves them
    assert catch_up.run_summary().endswith("done: 0 month(s) complete in every sink; not published yet: fhv 2021-02")
