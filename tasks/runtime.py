"""The one place where the pipeline changes the luigi process: ``install()``, called by ``tasks``.

``luigi --module tasks`` imports the ``tasks`` package, which calls ``install()`` as its last
step; nothing else in ``tasks`` or ``tlc`` changes process-wide state when imported, so a
script or test can use any module of ``tlc`` without getting any of this. It does four
things, all for the CLI run:

* one-line errors: luigi logs every exception with its traceback. For a ``PipelineError`` (a
  bad month, a 404, a changed header) the traceback only hides the one line the user needs,
  so a filter on luigi's logger drops it. Unexpected exceptions keep their traceback;
* failure alerts: luigi's e-mail made safe and the webhook (``tlc.alerts``);
* the worker: ``tasks.worker.RecoveringWorker``, which adds its tasks again when a restarted
  luigid forgot them, made the worker of every run by replacing the worker factory method of
  luigi's interface (``luigi.interface._WorkerSchedulerFactory.create_worker``, luigi 3.8.1:
  the ``luigi`` command offers no other way to choose the worker class);
* Arrow's jemalloc pool as the process default: it returns the conversion's and the COPY's
  buffers to the system sooner than mimalloc (peak RSS 293 MB instead of 350 MB on a yellow
  month, ~40 MB less for the Postgres load, at the same speed). It must be the default pool:
  the compute kernels and table building allocate from it.
"""

from __future__ import annotations

import logging

import luigi.interface
import pyarrow as pa
from luigi.parameter import ParameterException

from tasks.worker import RecoveringWorker
from tlc import alerts
from tlc.errors import InvalidInput, PipelineError

_OUR_ERRORS = "tlc.errors."


class OneLineErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "error in complete() method" in str(record.msg):
            _shorten_formatted_traceback(record)
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (InvalidInput, ParameterException)):  # raised while parsing the command line
            record.msg = f"invalid input: {exc}"
        elif isinstance(exc, PipelineError):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
        if isinstance(exc, (PipelineError, ParameterException)):
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _shorten_formatted_traceback(record: logging.LogRecord) -> None:
    """luigi formats complete()'s traceback into the message itself; keep its last line if ours."""
    text = record.getMessage()
    last = text.rstrip().splitlines()[-1]
    if last.startswith(_OUR_ERRORS):
        head = text.split("\n", 1)[0]
        record.msg = f"{head} {last.removeprefix(_OUR_ERRORS)}"
        record.args = ()


def install() -> None:
    """Idempotent: importing ``tasks`` twice (or a test calling it again) changes nothing more."""
    logger = logging.getLogger("luigi-interface")
    if not any(isinstance(f, OneLineErrors) for f in logger.filters):
        logger.addFilter(OneLineErrors())
    alerts.install()
    luigi.interface._WorkerSchedulerFactory.create_worker = _create_worker
    pa.set_memory_pool(pa.jemalloc_memory_pool())


def _create_worker(
    self: luigi.interface._WorkerSchedulerFactory,
    scheduler: luigi.scheduler.Scheduler,
    worker_processes: int,
    assistant: bool = False,
) -> RecoveringWorker:
    return RecoveringWorker(scheduler=scheduler, worker_processes=worker_processes, assistant=assistant)
