"""Run luigi in-process with the local scheduler and report what actually ran."""

from __future__ import annotations

from dataclasses import dataclass

import luigi
from luigi.execution_summary import _summary_dict


@dataclass
class Run:
    ok: bool
    ran: set[str]  # task ids that ran (successfully or not)
    failed: set[str]
    done_before: set[str]


def run(tasks: list[luigi.Task], workers: int = 1) -> Run:
    result = luigi.build(tasks, local_scheduler=True, detailed_summary=True, workers=workers, log_level="WARNING")
    summary = _summary_dict(result.worker)
    ids = {k: {t.task_id for t in v} for k, v in summary.items()}
    return Run(
        ok=result.scheduling_succeeded and not ids["failed"],
        ran=ids["completed"] | ids["failed"],
        failed=ids["failed"],
        done_before=ids["already_done"],
    )
