"""One error contract for the HTTP API: every 4xx (and the 503 of a store outage) answers with an
`ErrorResponse` body, whether FastAPI's validation refused the request (422), the recommender did
(RequestError: 404 unknown scenario / user / item, 409, 422), the key check did (401), or the
router did (404 unknown path, 405 method); and each route documents the statuses it returns, so a
client generated from the OpenAPI spec parses every answer.

    install_error_handlers(api)                       # on the FastAPI app
    @api.post("/v1/recommend", responses=documented(404, 409, 422))
    raise as_http(request_error)                      # a RequestError -> HTTPException
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oxygen.serving.core import RequestError
from oxygen.serving.schemas import ErrorDetail, ErrorResponse

KINDS = {400: "invalid", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 409: "conflict", 422: "invalid",
         503: "unavailable"}
MEANING = {
    400: "the body could not be read (not UTF-8 text)",
    401: "missing or wrong X-API-Key",
    404: "an unknown scenario, user or item (the message says which)",
    409: "the scenario cannot be served (empty item pool)",
    422: "the body does not validate, or a field does not fit the catalogue (the detail says which)",
    503: "the event store is unavailable; retry, nothing was written"}


def documented(*statuses: int) -> dict:
    """The `responses=` of a route: each status with the ErrorResponse body and what it means."""
    return {s: {"model": ErrorResponse, "description": MEANING[s]} for s in statuses}


class ApiError(HTTPException):
    """An HTTPException that carries its ErrorDetail list."""

    def __init__(self, status: int, details: list[ErrorDetail], headers: dict | None = None):
        super().__init__(status_code=status, detail=[d.model_dump() for d in details], headers=headers)


def as_http(err: RequestError) -> ApiError:
    """The HTTP form of a refusal from the recommender core."""
    kind = KINDS.get(err.status, "invalid")
    return ApiError(err.status, [ErrorDetail(loc=list(err.loc), msg=err.problem, type=kind,
                                             fix=err.fix or "see the API description at /docs")])


def unauthorized(header: str) -> ApiError:
    """401 for a missing or wrong API key header."""
    return ApiError(401, [ErrorDetail(loc=["header", header], msg=f"missing or wrong {header}", type="unauthorized",
                                      fix="send the service's API key in the X-API-Key header")])


def _fix(err: dict) -> str:
    """How to fix one pydantic validation error."""
    field = ".".join(str(x) for x in err.get("loc", ())[1:]) or "the body"
    kind = err.get("type", "")
    if kind == "missing":
        return f"add `{field}` (required)"
    if kind == "extra_forbidden":
        return f"remove `{field}`: the API has no such field"
    if kind == "value_error":  # a model rule (e.g. the trigger rule): its message says what to send
        return str(err.get("msg", "")).removeprefix("Value error, ")
    if kind.startswith("json"):
        return "send a valid JSON body with content-type application/json"
    return f"send `{field}` as the schema at /openapi.json describes ({err.get('msg', '')})"


def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = [ErrorDetail(loc=list(e.get("loc", ("body",))), msg=str(e.get("msg", "invalid")),
                           type=str(e.get("type", "invalid")), fix=_fix(e)) for e in exc.errors()]
    return JSONResponse(ErrorResponse(detail=details or [ErrorDetail(loc=["body"], msg="invalid request",
                                                                     type="invalid", fix=_fix({}))]).model_dump(),
                        status_code=422)


def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.detail, list):  # an ApiError: already ErrorDetail dicts
        body = {"detail": exc.detail}
    else:  # the router's own 404 / 405
        unreadable = exc.status_code == 400  # FastAPI could not read the body
        body = ErrorResponse(detail=[ErrorDetail(
            loc=["body" if unreadable else "path"], msg=str(exc.detail), type=KINDS.get(exc.status_code, "invalid"),
            fix="send a UTF-8 JSON body" if unreadable else "see /docs for the API's paths and methods")]).model_dump()
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    """Route every validation and HTTP error of `app` through the one ErrorResponse body."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
