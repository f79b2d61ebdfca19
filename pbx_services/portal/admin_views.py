"""What the administration pages (tenants, users, queues, IVR, meetings, calls) and their API share.

- The tenant a request works on: `request_tenant()` reads `tenant` from the query, the form or
  the JSON body and passes it through `auth.scoped_domain` (a tenant administrator gets its own,
  403 for another's); None means the default tenant, as in the CLI.
- Form values: `form_int`, `form_bool`, `form_text`, `form_list` read a posted form or a JSON
  body alike;
  errors go into a `FieldErrors`, raised as `FormInvalid` by `raise_if` (`form_bool` raises
  at once: only an API client can send a box something other than on or off).
- A service's refusal: a page runs the operation through `attempt` (the errors to show next to
  their fields; `add_page` is an add form's whole answer, `edit_page` the whole page that
  changes one thing); the API through
  `api_errors()`, which turns InvalidValue into 400, AlreadyExists into 409 and NotFound into
  404, each with `error` (the message) and, when the message names one, `field`.
  `answer_not_found(blueprint)` makes NotFound a 404 on pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from flask import Blueprint, abort, flash, jsonify, make_response, redirect, render_template, request

from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.models import AdminRole
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.validation import InvalidValue, parse_flag
from pbx_services.portal.auth import current_admin, is_api_request, scoped_domain
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import GENERAL, FieldErrors

T = TypeVar("T")

OPERATIONS = (AdminRole.SYSTEM, AdminRole.OPERATOR)
"""Who manages the cluster as a whole (tenants, every tenant's data)."""


def json_body() -> dict[str, Any]:
    """The request's JSON object; 400 when the body is not one."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object")
    return body


def request_tenant(body: Mapping[str, Any] | None = None) -> str | None:
    """The tenant (domain) the request names in `tenant`, as the administrator may use it."""
    # A form's field wins over the page's query (a form posted to ?tenant=a picking tenant b).
    requested = (body or {}).get("tenant") if body is not None else \
        request.form.get("tenant") or request.args.get("tenant")
    if requested is not None and not isinstance(requested, str):
        abort(400, description="tenant: a domain (a string)")
    return scoped_domain(requested or None)


def tenant_or_default(tenant: str | None) -> str:
    """The domain a request's tenant names: the default tenant's when it names none."""
    return tenant or portal_context().config.callmanager.default_domain


def found_or_404(items: Iterable[T], key: str, value: str, what: str) -> T:
    """The item of `items` whose `key` is `value` (a tenant's menu, trunk, group...); 404 naming
    `what` when there is none."""
    for item in items:
        if getattr(item, key) == value:
            return item
    abort(404, description=f"no {what} {value}")


def tenant_choices() -> list[str]:
    """The tenants the administrator may pick in a form: every domain, or its own."""
    admin = current_admin()
    if admin.role is AdminRole.TENANT:
        return [admin.tenant] if admin.tenant else []
    return [tenant.domain for tenant in portal_context().service(TenantService).list_tenants()]


def form_int(form: Mapping[str, Any], name: str, errors: FieldErrors, default: int) -> int:
    """The posted whole number `name` (`default` when empty); an error next to the field otherwise."""
    raw = form.get(name)
    if raw is None or str(raw).strip() == "":
        return default
    if isinstance(raw, bool):
        errors.add(name, f"{name.replace('_', ' ')}: a whole number, not {raw!r}")
        return default
    try:
        return int(str(raw).strip())
    except ValueError:
        errors.add(name, f"{name.replace('_', ' ')}: not a whole number ({str(raw)[:20]!r})")
        return default


def form_bool(form: Mapping[str, Any], name: str, default: bool = False) -> bool:
    """A checkbox (present: on) or a JSON boolean (or a word `parse_flag` reads); any other
    value raises FormInvalid naming the field, rather than being taken for false."""
    raw = form.get(name)
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    try:
        return parse_flag(name.replace("_", " "), str(raw))
    except InvalidValue as exc:
        raise FormInvalid(FieldErrors({name: str(exc)})) from None


def form_list(form: Mapping[str, Any], name: str) -> list[str]:
    """A list: a JSON list, or a form's text separated by commas, spaces or new lines."""
    value = form.get(name)
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    return [part for part in str(value or "").replace(",", " ").split() if part]


def form_text(form: Mapping[str, Any], name: str) -> str | None:
    """A text value, stripped; None when absent or empty."""
    raw = form.get(name)
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


class FormInvalid(InvalidValue):
    """Values of a form (or JSON body) that could not be read, each with its error."""

    def __init__(self, errors: FieldErrors) -> None:
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def raise_if(errors: FieldErrors) -> None:
    if errors:
        raise FormInvalid(errors)


Fields = Iterable[str] | Mapping[str, str]
"""A form's fields, or what a service's message starts with -> the field it is about
({"queue number": "number", "member": "members"}) where the two differ."""


def form_errors(exc: Exception, fields: Fields) -> FieldErrors:
    """The service's refusal as the form's errors: next to the field its message is about (its
    first words, or those after a "tenant x.example: " or "user 1001: " prefix), else above the form."""
    if isinstance(exc, FormInvalid):
        return exc.errors
    prefixes = dict(fields) if isinstance(fields, Mapping) else {field: field for field in fields}
    message = str(exc)
    _, colon, detail = message.partition(": ")
    for text in (message, detail) if colon else (message,):
        lowered = text.lower()
        for prefix in sorted(prefixes, key=len, reverse=True):
            if any(lowered.startswith(spelling) for spelling in
                   {prefix.lower(), prefix.lower().replace("_", " "), prefix.lower().replace("_", "-")}):
                return FieldErrors({prefixes[prefix]: message})
    return FieldErrors({GENERAL: message})


def attempt(action: Callable[[], T], fields: Fields) -> tuple[T | None, FieldErrors]:
    """For a page: what `action` returns, or None and the errors to show next to their fields."""
    try:
        return action(), FieldErrors()
    except (InvalidValue, AlreadyExists) as exc:
        return None, form_errors(exc, fields)
    except NotFound as exc:
        if exc.model != "Tenant":
            raise
        return None, FieldErrors({"tenant": f"tenant {exc.criteria.get('domain')} does not exist"})


PageAgain = Callable[[Mapping[str, Any], FieldErrors], Any]
"""A page shown again with a refused form: (the form as posted, its errors) -> the page."""


def add_page(save: Callable[[], T], *, fields: Fields, page_again: PageAgain,
             done: Callable[[T], tuple[str, str]]) -> Any:
    """A page's add form posted: `save`, then `done(saved)` gives what to flash and the page to
    show it on; or, refused, the page again (`page_again(form, errors)`) with the form as posted
    and its errors next to their fields, 400."""
    saved, errors = attempt(save, fields)
    if saved is None:
        response = make_response(page_again(request.form, errors))
        response.status_code = 400
        return response
    message, to = done(saved)
    flash(message)
    return redirect(to)


def edit_page(template: str, *, current: Mapping[str, Any], save: Callable[[], object], fields: Fields,
              done: str, done_to: str, **context: Any) -> Any:
    """A page that changes one thing: on GET its form holds `current`; a POST runs `save`, then
    flashes `done` on the page `done_to`, or shows the form again as posted with its errors (400).
    `context` goes to the template both times."""
    if request.method == "GET":
        return render_template(template, form=current, errors=FieldErrors(), **context)
    changed, errors = attempt(save, fields)
    if changed is None:
        return render_template(template, form=request.form, errors=errors, **context), 400
    flash(done)
    return redirect(done_to)


def delete_then_redirect(action: Callable[[], None], *, done: str, refused_to: str, done_to: str) -> Any:
    """A page's delete button: `action`, then `done` flashed on the page `done_to`; a refusal (something
    still uses what is deleted) flashed on the page `refused_to`."""
    try:
        action()
    except InvalidValue as exc:
        flash(str(exc))
        return redirect(refused_to)
    flash(done)
    return redirect(done_to)


@contextmanager
def api_errors(fields: Fields = ()) -> Iterator[None]:
    """Turn what a service raises into the API's JSON answer (see the module's doc)."""
    try:
        yield
    except InvalidValue as exc:
        _json_error(400, exc, fields)
    except AlreadyExists as exc:
        _json_error(409, exc, fields)
    except NotFound as exc:
        _json_error(404, exc, ())


def answer_not_found(blueprint: Blueprint) -> None:
    """A `NotFound` out of a service becomes the 404 page, or the API's 404 JSON."""
    def not_found(exc: NotFound) -> Any:
        if is_api_request():
            return jsonify(error=str(exc)), 404
        return render_template("error.html", code=404, name="Not Found", description=str(exc)), 404
    blueprint.register_error_handler(NotFound, not_found)


def _json_error(status: int, exc: Exception, fields: Fields) -> NoReturn:
    errors = form_errors(exc, fields)
    field, message = next(iter(errors.items()))
    abort(make_response(jsonify(error=message, field=None if field == GENERAL else field), status))
