"""A luigi worker that notices when a restarted luigid forgot the tasks it is waiting for.

luigid keeps its task graph in memory (and in ``--state-path`` only when it is stopped
cleanly). Restarted without that state, it no longer knows the tasks a running worker
registered: the worker asks for work, hears there is none and nothing pending, and stops
with most of its range undone, exiting 25 ("not granted run permission") like a harmless
run that overlapped another one.

``RecoveringWorker`` tells the two apart where luigi's worker stops: when the scheduler
offers no work while tasks this run registered are still pending by its own account, it asks
the scheduler which of them it still holds for this worker (one ``task_list`` call, made only
when the scheduler counts nothing pending for this worker). Tasks another invocation ran or
is running are known there (DONE, RUNNING); tasks luigid lost are not, or are pending for no
one but dead workers (a stale saved state), and are added again (their
completeness checked afresh, like a new run), at most ``[tlc.schedule] luigid_recoveries``
times, each time with one WARNING line. Tasks it still
cannot get back end the run with one ERROR line saying luigid lost them, on top of luigi's
summary ("not granted run permission", exit code ``[retcode] not_run``).

``tasks.runtime.install()`` makes it the worker of every run of the ``luigi`` command.
"""

from __future__ import annotations

import logging
from typing import Any

import luigi
import luigi.worker
from luigi.scheduler import PENDING

from tlc.config import ScheduleConfig

logger = logging.getLogger("luigi-interface")


class RecoveringWorker(luigi.worker.Worker):
    """luigi's worker, plus: tasks a restarted luigid forgot are added again (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recoveries = 0
        self._lost_reported = False

    def _get_work(self) -> Any:
        response = super()._get_work()
        if self._stop_requesting_work:  # phasing out (SIGUSR1, disabled by luigid): nothing more to take on
            return response
        if response.task_id is not None or self._running_tasks or response.running_tasks or response.n_pending_tasks:
            return response  # work, or tasks the scheduler still holds for us: luigi's own logic applies
        lost = self._forgotten()
        if not lost:
            return response
        limit = ScheduleConfig().luigid_recoveries
        if self._recoveries >= limit:
            if self._lost_reported:  # a keep-alive worker asks again: say it once
                return response
            self._lost_reported = True
            names = ", ".join(sorted(t.task_id for t in lost)[:3])
            logger.error(
                "luigid lost %d task(s) of this run and forgot them again after %d recoveries: %s%s; "
                "they did not run (a rerun does them)",
                len(lost), limit, names, ", ..." if len(lost) > 3 else "",
            )  # fmt: skip
            return response
        self._recoveries += 1
        logger.warning(
            "luigid no longer knows %d task(s) of this run (restarted without its state?): "
            "adding them again (recovery %d of %d)",
            len(lost), self._recoveries, limit,
        )  # fmt: skip
        for task in _roots(lost):
            self.add(task)
        return super()._get_work()

    def _forgotten(self) -> list[luigi.Task]:
        """Tasks this run registered as pending, never finished, that the scheduler no longer holds for it."""
        latest: dict[str, tuple[luigi.Task, str]] = {}
        for task, status, _ in self._add_task_history:
            latest[task.task_id] = (task, status)
        pending = [task for task, status in latest.values() if status == PENDING]
        if not pending:
            return []
        known = self._scheduler.task_list(status="", upstream_status="", limit=False)
        return [t for t in pending if t.task_id not in known or _orphaned(known[t.task_id], self._id)]


def _orphaned(entry: dict[str, Any], worker_id: str) -> bool:
    """Pending in the scheduler, but not for this worker: a stale state luigid came back with.

    A task another invocation ran (DONE, which luigid keeps for ``stable_done_cooldown_secs``
    against a new PENDING claim), runs, or failed is that invocation's: not lost.
    """
    return entry.get("status") == PENDING and worker_id not in entry.get("workers", [])


def _roots(tasks: list[luigi.Task]) -> list[luigi.Task]:
    """The tasks no other of them requires: adding those adds the rest, each checked once."""
    required = {dep.task_id for task in tasks for dep in luigi.task.flatten(task.requires())}
    return [task for task in tasks if task.task_id not in required]
