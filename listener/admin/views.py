"""The dashboard pages (all read-only) and the login/logout forms.

Every value shown comes from the registry or the request and goes through
Jinja's autoescaping; nothing here builds HTML by hand (the chart is built by
charts.py, which escapes its own text).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from canary.model import CanaryStatus
from listener.admin import queries
from listener.admin.state import OPEN_ENDPOINTS, state
from listener.admin.auth import MAX_NAME_CHARS

blueprint = Blueprint("admin", __name__)

# Where a login may send the browser back to: a path of this site only.
_LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9/_\-.~%?=&+]*$")
MAX_PASSWORD_CHARS = 1024


@blueprint.before_app_request
def _require_login() -> Response | None:
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        return None  # None: no route matched, the 404 page follows
    if state().auth.current_user() is not None:
        return None
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    abort(401)


@blueprint.app_context_processor
def _common() -> dict:
    current = state()
    return {"user": current.auth.current_user(), "read_only": current.config.read_only}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _page_number() -> int:
    value = request.args.get("page", "1")
    return int(value) if value.isdigit() and len(value) < 7 else 1


# -- login -----------------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    auth = state().auth
    target = request.values.get("next", "")
    target = target if _LOCAL_PATH.match(target) else url_for("admin.sources")
    if request.method == "GET":
        if auth.current_user() is not None:
            return redirect(target)
        return render_template("login.html", next=target, error=None, can_log_in=auth.can_log_in,
                               config=state().config)
    username = request.form.get("username", "")[:MAX_NAME_CHARS]
    password = request.form.get("password", "")[:MAX_PASSWORD_CHARS]
    result = auth.login(username, password, request.remote_addr)
    if result.ok:
        auth.start_session()
        return redirect(target)
    # The same page for an unknown name and a wrong password; the name is not filled back in.
    error = ("Too many failed logins: logins are locked for a while." if result.locked
             else "Wrong user name or password.")
    body = render_template("login.html", next=target, error=error, can_log_in=auth.can_log_in,
                           config=state().config)
    return Response(body, status=429 if result.locked else 401, mimetype="text/html")


@blueprint.route("/logout", methods=["POST"])
def logout() -> Response:
    state().auth.end_session()
    return redirect(url_for("admin.login"))


# -- pages -----------------------------------------------------------------------------------


@blueprint.route("/")
def sources() -> str:
    rows = queries.sources_overview(state().registry, _now())
    return render_template("sources.html", rows=rows, statuses=list(CanaryStatus), nav="sources")


@blueprint.route("/sources/<path:name>")
def source(name: str) -> str:
    wanted = request.args.get("status", "")
    status = CanaryStatus(wanted) if wanted in {s.value for s in CanaryStatus} else None
    page = queries.source_page(state().registry, name, _now(), page=_page_number(), status=status)
    return render_template("source.html", page=page, name=name, statuses=list(CanaryStatus),
                           days=queries.TIMELINE_DAYS, nav="sources")


@blueprint.route("/incidents")
def incidents() -> str:
    overview = queries.incidents_overview(state().registry)
    now = _now()
    return render_template("incidents.html", overview=overview, now=now,
                           incidents=list(reversed(overview.incidents)),
                           alerts=list(reversed(overview.alerts)), nav="incidents")


@blueprint.route("/scans")
def scans() -> str:
    reports, page = queries.scan_reports(state().registry, _page_number())
    return render_template("scans.html", reports=reports, page=page, nav="scans")


@blueprint.route("/scans/<int:report_id>")
def scan(report_id: int) -> str:
    stored = queries.scan_report(state().registry, report_id)
    if stored is None:
        abort(404)
    return render_template("scan.html", stored=stored, report=stored.report, nav="scans")
