"""Which job types a worker runs: the built-in ones, the ``@conveyor.job`` types of the
modules in ``CONVEYOR_JOB_MODULES``, and ``exec`` when ``CONVEYOR_EXEC_ALLOW`` lists programs.
All go through ``conveyor.registry``; no type is listed anywhere else."""

from __future__ import annotations

import importlib
import traceback

import conveyor
from conveyor_worker import builtin
from conveyor_worker.settings import Settings


class JobModuleError(Exception):
    """A module of CONVEYOR_JOB_MODULES cannot be imported, or CONVEYOR_EXEC_ALLOW holds a
    glob that names no program path (the worker does not start)."""


def load_types(settings: Settings) -> conveyor.Registry:
    builtin.Sleep.allow_busy = settings.allow_busy_sleep
    for module in settings.job_modules:
        try:
            importlib.import_module(module)
        except Exception as e:
            detail = "".join(traceback.format_exception_only(e)).strip()
            raise JobModuleError(
                f"CONVEYOR_JOB_MODULES: cannot import {module!r}: {detail} (is it on the "
                "worker's PYTHONPATH, or installed in its environment?)"
            ) from e
    if settings.exec_allow:
        from conveyor_worker.execjob import exec_type

        try:
            exec_job = exec_type(settings.exec_allow, grace_s=settings.exec_grace_s)
        except ValueError as e:  # a glob that cannot mean a program's path
            raise JobModuleError(str(e)) from None
        if conveyor.registry.get(exec_job.name) is None:
            conveyor.registry.add(exec_job)
    return conveyor.registry
