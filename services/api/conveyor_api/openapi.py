"""The OpenAPI document names the job types of the moment: ``type`` of a submission is one
of the types live workers run, and ``payload`` follows that type's schema (what the API
checks, so a client generated from the document or a fuzzer sees the same contract)."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from conveyor_api.types import View

SUBMISSIONS = ("JobIn", "ScheduledJobIn")
"""The schemas of a job to submit: a submission, and the job of a schedule's ticks."""


def with_types(document: dict[str, Any], view: View, accept_unserved: bool) -> dict[str, Any]:
    document = copy.deepcopy(document)
    for name in SUBMISSIONS:
        job_in = document.get("components", {}).get("schemas", {}).get(name)
        if job_in is not None:
            _name_types(job_in, view, accept_unserved)
    return document


def _name_types(job_in: dict[str, Any], view: View, accept_unserved: bool) -> None:
    served = sorted(name for name in view.served if name in view.types)
    if not accept_unserved:
        job_in["properties"]["type"]["enum"] = served
    choices = []
    for name in served:
        schema = view.types[name].schema
        # a schema with references of its own ("#/$defs/...") would point into this document
        payload = {"type": "object"} if "$defs" in str(schema) else schema
        choices.append({"properties": {"type": {"const": name}, "payload": payload}})
    if choices and not accept_unserved:
        job_in["oneOf"] = choices


def serve(app: FastAPI) -> None:
    """Replace FastAPI's ``/openapi.json`` with one that reads the types first."""
    url = app.openapi_url
    if url is None:
        return
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != url]

    async def openapi(request: Request) -> JSONResponse:
        document = app.openapi()
        service = getattr(request.app.state, "service", None)
        if service is None:
            return JSONResponse(document)
        view = await service.types.view(fresh=True)
        return JSONResponse(with_types(document, view, service.types.accept_unserved))

    app.add_route(url, openapi, include_in_schema=False)
