"""The metrics feature: counts every request, serves `/metrics`.

The tally is a reporter, not a hook: it hears of each request before the first hook and
after the last, whatever the hooks decided, with a plain call rather than two awaits.
"""

from __future__ import annotations

from pathlib import Path

from ..pipeline import NOTHING, Contribution, Shared
from ..settings import Settings
from .exposition import MetricsApp
from .tally import Tally
from .workers import METRICS_DIR_ENV, WorkerFigures


def install(settings: Settings, shared: Shared) -> Contribution:
    """The tally (a reporter), its publisher across workers, and `/metrics`."""
    ops = settings.ops
    if not ops.metrics:
        return NOTHING
    tally = Tally(shared.signals)
    where = settings.extra.get(METRICS_DIR_ENV)
    figures = WorkerFigures(tally, Path(where) if where else None)
    return Contribution(
        resources=(figures,),
        reporters=(tally,),
        mounts=(("/metrics", MetricsApp(ops, figures)),),
    )
