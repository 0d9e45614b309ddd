"""The metrics feature: counts every request, serves `/metrics`.

It comes first in the feature list, so that its `after` (nothing) and its report
see each request whole, whatever later features decided.
"""

from __future__ import annotations

from pathlib import Path

from ..pipeline import NOTHING, Contribution, Shared
from ..settings import Settings
from .exposition import MetricsApp
from .tally import Tally
from .workers import METRICS_DIR_ENV, WorkerFigures


def install(settings: Settings, shared: Shared) -> Contribution:
    """The tally (hook and reporter), its publisher across workers, and `/metrics`."""
    ops = settings.ops
    if not ops.metrics:
        return NOTHING
    tally = Tally(shared.signals)
    where = settings.extra.get(METRICS_DIR_ENV)
    figures = WorkerFigures(tally, Path(where) if where else None)
    return Contribution(
        hooks=(tally,),
        resources=(figures,),
        reporters=(tally,),
        mounts=(("/metrics", MetricsApp(ops, figures)),),
    )
