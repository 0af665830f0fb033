"""Conveyor for your own code: ``@conveyor.job`` makes a function a job type that Conveyor's
workers run (list its module in ``CONVEYOR_JOB_MODULES``).

    import conveyor, msgspec

    class Resize(msgspec.Struct):
        url: str
        width: int = 800

    @conveyor.job("resize-image", max_attempts=3, timeout_s=60)
    async def resize(ctx: conveyor.Context, p: Resize) -> dict:
        ctx.progress(50, "downloaded")
        ...
"""

from conveyor.context import Context
from conveyor.errors import PermanentFailure, Retry
from conveyor.jobs import Defaults, JobType, Registry, job, registry

__all__ = [
    "Context",
    "Defaults",
    "JobType",
    "PermanentFailure",
    "Registry",
    "Retry",
    "job",
    "registry",
]
