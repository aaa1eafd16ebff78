"""The console: server-rendered pages, the JSON API behind them, actions with identity, ``/metrics``.

``create_app(ctx)`` builds the app on a :class:`~controller.reactors.context.Context` (the audit
store, the registry and the configured models); ``retrainctl serve`` runs it with uvicorn.

Pages: ``/`` (fleet), ``/models/{name}``, ``/costs``, ``/savings``, ``/governance``, ``/api``
(the API's reference, rendered from its OpenAPI document at ``/api/openapi.json``).
API: ``GET /api/models``, ``/api/models/{name}``, ``/api/models/{name}/history``, ``/api/costs``,
``/api/audit``; ``POST /api/models/{name}/approve``, ``/veto``, ``/check``. Who may do what is
in :mod:`controller.web.auth`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import BackgroundTasks, Body, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, Field

from controller.adapters.store.records import TimelinePoint, to_jsonable
from controller.errors import GiveUp, RetryLater
from controller.reactors.context import Context
from controller.web import auth, views
from controller.web.charts import Band, Chart, Mark, Series, render
from controller.web.metrics import StoreCollector, exposition

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
CheckRunner = Callable[[str, str], None]
"""Runs one requested check: ``(model, request key)``."""

MAX_OVERRIDE_HOURS = 24.0 * 90


class Refused(Exception):
    """A request refused: 401 (no valid token), 403 (outside its role), 404, 400."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class OverrideRequest(BaseModel):
    reason: str = Field(..., min_length=1, max_length=2000, description="Why (recorded with the token's name).")
    hours: float | None = Field(None, gt=0, le=MAX_OVERRIDE_HOURS, description="Expiry (default 72 h, veto 168 h).")


class OverrideRecorded(BaseModel):
    id: int
    model: str
    kind: str
    author: str
    reason: str
    expires_at: datetime


class CheckRequested(BaseModel):
    model: str
    request_key: str
    requested_by: str


DEFAULT_HOURS = {"approve": 72.0, "veto": 168.0}


def in_process_checks(ctx: Context) -> CheckRunner:
    """Check-now in the console's own process, one at a time, as ``retrainctl check`` does: the
    check, the retrain it triggers, then the outbox."""
    from controller.reactors.check import run_check
    from controller.reactors.outbox import deliver_outbox
    from controller.reactors.retrain import run_retrain

    lock = threading.Lock()

    def run(model: str, request_key: str) -> None:
        with lock:
            try:
                outcome = run_check(ctx, model, request_key=request_key)
                if outcome.retrain_id is not None:
                    run_retrain(ctx, outcome.retrain_id)
                deliver_outbox(ctx)
            except Exception as exc:  # the check is recorded as failed in the store; the page shows it
                log.warning("console check of %s failed: %s", model, type(exc).__name__)

    return run


def create_app(ctx: Context, run_check: CheckRunner | None = None) -> FastAPI:
    fleet = views.Fleet.of(ctx.service, ctx.models)
    tokens = auth.TokenBook(ctx.service.console.tokens)
    settings = ctx.service.console
    runner = run_check or in_process_checks(ctx)
    collector = StoreCollector(fleet, ctx.store, ctx.clock)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(money=_money, num=_num, pct=_pct, when=_when)
    app = FastAPI(
        title="Retrain Controller console",
        summary="The fleet's decisions, money and history; approve, veto and check with a token.",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def presented(request: Request) -> str | None:
        return auth.bearer(request.headers.get("authorization")) or request.cookies.get(auth.COOKIE)

    def reader(request: Request) -> auth.Identity | None:
        """Who reads: None when the console is open (no tokens); 401 without a valid token."""
        if tokens.read_only:
            return None
        who = tokens.identify(presented(request))
        if who is None:
            raise Refused(401, "a valid token is needed: log in, or send Authorization: Bearer <token>")
        return who

    def actor(token: str | None, model: str) -> auth.Identity:
        if tokens.read_only:
            raise Refused(403, "the console is read-only: no tokens are configured (console.tokens)")
        who = tokens.identify(token)
        if who is None:
            raise Refused(401, "a valid token is needed for this action")
        cfg = ctx.models.get(model)
        if cfg is None:
            raise Refused(404, f"unknown model {model!r}")
        if not who.may_act_on(cfg.team):
            raise Refused(403, f"token {who.name!r} ({who.role}) may not act on {model} (team {cfg.team or '-'})")
        return who

    def known(name: str) -> None:
        if name not in ctx.models:
            raise Refused(404, f"unknown model {name!r}")

    def page(request: Request, template: str, who: auth.Identity | None, status: int = 200, **values: Any) -> Response:
        token = request.cookies.get(auth.COOKIE)
        return templates.TemplateResponse(
            request,
            template,
            {
                "who": who,
                "read_only": tokens.read_only,
                "csrf": auth.csrf_token(token) if token and who is not None else None,
                "nav": template.removesuffix(".html"),
                **values,
            },
            status_code=status,
        )

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if request.url.path.startswith("/api/") or request.url.path == "/metrics":
            return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)
        template = "login.html" if exc.status == 401 else "error.html"
        return page(request, template, None, exc.status, message=exc.message)

    # pages --------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def fleet_page(
        request: Request, team: str | None = None, decision: str | None = None, owner: str | None = None
    ) -> Response:
        who = reader(request)
        now = ctx.clock()
        rows = views.fleet_rows(fleet, ctx.store, now, team or None, decision or None, owner or None)
        teams, owners = views.teams_and_owners(fleet)
        filters = {"team": team or "", "decision": decision or "", "owner": owner or ""}
        return page(request, "fleet.html", who, rows=rows, teams=teams, owners=owners, filters=filters, now=now)

    @app.get("/models/{name}", response_class=HTMLResponse, include_in_schema=False)
    def model_view(request: Request, name: str, done: str | None = None) -> Response:
        who = reader(request)
        known(name)
        now = ctx.clock()
        data = views.model_page(fleet, ctx.store, name, now)
        policy = ctx.policy(ctx.models[name])
        charts = _charts(data, policy.drift_share_threshold)
        links = _links(settings.mlflow_ui_url, data)
        may_act = who is not None and who.may_act_on(data.row.team)
        return page(request, "model.html", who, m=data, charts=charts, links=links, may_act=may_act, done=done, now=now)

    @app.get("/costs", response_class=HTMLResponse, include_in_schema=False)
    def costs_page(request: Request) -> Response:
        who = reader(request)
        return page(request, "costs.html", who, report=views.spend_report(fleet, ctx.store, ctx.clock()))

    @app.get("/savings", response_class=HTMLResponse, include_in_schema=False)
    def savings_page(request: Request) -> Response:
        who = reader(request)
        return page(request, "savings.html", who, report=views.savings_report(fleet, ctx.store))

    @app.get("/governance", response_class=HTMLResponse, include_in_schema=False)
    def governance_page(request: Request) -> Response:
        who = reader(request)
        report, note = _governance(ctx, fleet)
        return page(request, "governance.html", who, report=report, note=note)

    @app.get("/api", response_class=HTMLResponse, include_in_schema=False)
    def api_reference(request: Request) -> Response:
        who = reader(request)
        return page(request, "api.html", who, schema=app.openapi())

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> Response:
        return page(request, "login.html", None, message=None)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form()]) -> Response:
        who = tokens.identify(token.strip())
        if who is None:
            return page(request, "login.html", None, 401, message="that token is not valid")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            auth.COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=12 * 3600,
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        if not auth.csrf_ok(request.cookies.get(auth.COOKIE), csrf):
            raise Refused(403, "the form's CSRF token does not match: reload the page and try again")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.COOKIE)
        return response

    @app.post("/models/{name}/{action}", include_in_schema=False)
    def form_action(
        request: Request,
        background: BackgroundTasks,
        name: str,
        action: str,
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        hours: Annotated[str, Form()] = "",
    ) -> Response:
        if action not in ("approve", "veto", "check"):
            raise Refused(404, f"no action {action!r}")
        token = request.cookies.get(auth.COOKIE)
        who = actor(token, name)
        if not auth.csrf_ok(token, csrf):
            raise Refused(403, "the form's CSRF token does not match: reload the page and try again")
        if action == "check":
            _request_check(background, runner, name, who, ctx.clock())
        else:
            _override(ctx, name, action, who, reason, _hours(hours))
        return RedirectResponse(f"/models/{name}?done={action}", status_code=303)

    # API ----------------------------------------------------------------------------------------
    @app.get("/api/models", response_model=list[views.FleetRow], tags=["read"])
    def api_models(
        request: Request,
        team: Annotated[str | None, Query(description="Only this team's models.")] = None,
        decision: Annotated[str | None, Query(description="TRIGGER, DEFER or VETO.")] = None,
        owner: Annotated[str | None, Query(description="Only this owner's models.")] = None,
    ) -> Any:
        """Every watched model with its newest decision and money, money at stake first."""
        reader(request)
        return views.fleet_rows(fleet, ctx.store, ctx.clock(), team, decision, owner)

    @app.get("/api/models/{name}", tags=["read"])
    def api_model(request: Request, name: str) -> dict[str, Any]:
        """One model: its fleet row, newest decision, per-column drift, retrains and overrides."""
        reader(request)
        known(name)
        data = views.model_page(fleet, ctx.store, name, ctx.clock(), limit=0)
        out = asdict(data)
        out.pop("timeline")
        return dict(to_jsonable(out))

    @app.get("/api/models/{name}/history", tags=["read"])
    def api_history(
        request: Request, name: str, limit: Annotated[int, Query(ge=1, le=5000)] = 500
    ) -> list[dict[str, Any]]:
        """The model's newest checks, oldest first: metric (with its interval), drift share, decision, loss per day."""
        reader(request)
        known(name)
        return [dict(to_jsonable(p._asdict())) for p in ctx.store.timeline(name, limit)]

    @app.get("/api/costs", response_model=views.CostReport, tags=["read"])
    def api_costs(request: Request) -> Any:
        """Spend by team, stage and month, anomalies and unattributed spend (with its source)."""
        reader(request)
        return views.spend_report(fleet, ctx.store, ctx.clock())

    @app.get("/api/audit", response_model=views.GovernanceReport, tags=["read"])
    def api_audit(request: Request) -> Any:
        """The governance audit's breaches and the overrides in force."""
        reader(request)
        return _governance(ctx, fleet)[0]

    @app.post("/api/models/{name}/approve", response_model=OverrideRecorded, tags=["act"])
    def api_approve(request: Request, name: str, body: Annotated[OverrideRequest, Body()]) -> Any:
        """Approve a retrain of the model (owner of its team, or admin); recorded under the token's name."""
        who = actor(auth.bearer(request.headers.get("authorization")), name)
        return _override(ctx, name, "approve", who, body.reason, body.hours)

    @app.post("/api/models/{name}/veto", response_model=OverrideRecorded, tags=["act"])
    def api_veto(request: Request, name: str, body: Annotated[OverrideRequest, Body()]) -> Any:
        """Veto retraining the model until the veto expires; recorded under the token's name."""
        who = actor(auth.bearer(request.headers.get("authorization")), name)
        return _override(ctx, name, "veto", who, body.reason, body.hours)

    @app.post("/api/models/{name}/check", response_model=CheckRequested, status_code=202, tags=["act"])
    def api_check(request: Request, background: BackgroundTasks, name: str) -> Any:
        """Check the model now (in the background); the check's request key names who asked."""
        who = actor(auth.bearer(request.headers.get("authorization")), name)
        return _request_check(background, runner, name, who, ctx.clock())

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if not settings.metrics_public:
            reader(request)
        return Response(exposition(collector), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        ctx.store.outbox_counts()  # the store answers
        return {"status": "ok"}

    return app


def _hours(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise Refused(400, f"hours: not a number: {text[:40]!r}") from None
    if not 0 < value <= MAX_OVERRIDE_HOURS:
        raise Refused(400, f"hours: must be above 0 and at most {MAX_OVERRIDE_HOURS:g}, got {value:g}")
    return value


def _override(
    ctx: Context, model: str, kind: str, who: auth.Identity, reason: str, hours: float | None
) -> OverrideRecorded:
    if not reason.strip():
        raise Refused(400, "reason: must not be empty (an override is part of the audit trail)")
    expires = ctx.clock() + timedelta(hours=hours or DEFAULT_HOURS[kind])
    oid = ctx.store.add_override(model, kind, who.name, reason.strip(), expires)
    log.info("%s #%s of %s by token %s", kind, oid, model, who.name)
    return OverrideRecorded(id=oid, model=model, kind=kind, author=who.name, reason=reason.strip(), expires_at=expires)


def _request_check(
    background: BackgroundTasks, runner: CheckRunner, model: str, who: auth.Identity, now: datetime
) -> CheckRequested:
    key = f"console:{model}:{who.name}:{now.isoformat(timespec='microseconds')}"
    background.add_task(runner, model, key)
    return CheckRequested(model=model, request_key=key, requested_by=who.name)


def _governance(ctx: Context, fleet: views.Fleet) -> tuple[views.GovernanceReport, str | None]:
    """The report, with the registered models' owner tags when the registry answers."""
    tags: dict[str, dict[str, str]] = {}
    note = None
    try:
        for cfg in ctx.models.values():
            if not cfg.owner or not cfg.business_purpose:
                tags[cfg.registered_model] = ctx.registry.model_tags(cfg.registered_model)
    except (RetryLater, GiveUp) as exc:
        note = f"registry tags not read ({type(exc).__name__}): owners and purposes from the model files only"
    return views.governance_report(fleet, ctx.store, ctx.clock(), tags), note


def _charts(m: views.ModelPage, drift_threshold: float | None) -> dict[str, Any]:
    """The model page's three timelines, with its decisions and retrains marked."""
    done = [p for p in m.timeline if p.status == "done"]
    marks = [
        Mark(p.started_at, f"{p.action} at {p.started_at:%Y-%m-%d %H:%M}", f"mark-{p.action.lower()}")
        for p in done
        if p.action in ("TRIGGER", "VETO")
    ]
    marks += [
        Mark(p.started_at, f"check failed at {p.started_at:%Y-%m-%d %H:%M}", "mark-failed")
        for p in m.timeline
        if p.status == "failed"
    ]
    first = m.timeline[0].started_at if m.timeline else None
    marks += [
        Mark(r.created_at, f"retrain {r.id} ({r.state})", "mark-retrain")
        for r in m.retrains
        if first is not None and r.created_at >= first
    ]
    metric = next((p.metric for p in reversed(done) if p.metric), m.row.metric or "metric")
    baseline = next((p.metric_baseline for p in reversed(done) if p.metric_baseline is not None), None)

    def source(p: TimelinePoint, wanted: str) -> float | None:
        return p.metric_value if p.metric_source == wanted else None

    return {
        "metric": render(
            Chart(
                f"{metric}: realized and estimated, with intervals",
                [
                    Series(metric, [(p.started_at, p.metric_value) for p in done], "metric", dots=False),
                    Series("realized", [(p.started_at, source(p, "realized")) for p in done], "realized", line=False),
                    Series(
                        "estimated", [(p.started_at, source(p, "estimated")) for p in done], "estimated", line=False
                    ),
                ],
                band=Band("interval", [(p.started_at, p.metric_low, p.metric_high) for p in done], "interval"),
                marks=marks,
                reference=("baseline", baseline) if baseline is not None else None,
                y_format=lambda v: f"{v:.3f}",
            )
        ),
        "drift": render(
            Chart(
                "drift share (drifted columns / columns)",
                [Series("drift share", [(p.started_at, p.drift_share) for p in done], "drift")],
                marks=marks,
                reference=("threshold", drift_threshold) if drift_threshold is not None else None,
                y_format=lambda v: f"{v:.2f}",
                y_floor=0.0,
            )
        ),
        "loss": render(
            Chart(
                "expected loss per day",
                [Series("loss per day", [(p.started_at, p.loss_per_day) for p in done], "loss")],
                marks=marks,
                y_format=_money,
                y_floor=0.0,
            )
        ),
    }


def _links(ui: str | None, m: views.ModelPage) -> dict[str, str]:
    if not ui:
        return {}
    base = ui.rstrip("/")
    out = {}
    if m.row.version:
        out["MLflow version"] = f"{base}/#/models/{m.row.registered_model}/versions/{m.row.version}"
    if m.drift_report_run:
        out["evidently report"] = f"{base}/#/runs/{m.drift_report_run}"
    return out


# The filters print numbers and times only: marked safe, they skip escaping (a fleet page calls
# them a few thousand times).
def _money(v: float | None) -> Markup:
    if v is None:
        return Markup("-")
    if abs(v) >= 1e6:
        return Markup(f"{v / 1e6:,.1f}M")
    return Markup(f"{v:,.0f}")


def _num(v: float | None, spec: str = ".3f") -> Markup:
    return Markup("-" if v is None else format(v, spec))


def _pct(v: float | None) -> Markup:
    return Markup("-" if v is None else f"{100 * v:.0f}%")


def _when(v: datetime | None) -> Markup:
    return Markup("-" if v is None else f"{v:%Y-%m-%d %H:%M}")
