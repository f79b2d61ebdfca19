"""IVR menus and their prompts: list, add or change a menu (greeting, options, timeouts), delete it;
prompts uploaded as WAV files or spoken by espeak-ng, listed and deleted."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from pbx_services.cluster.audio_import import import_wav
from pbx_services.cluster.ivr import IvrMenuInfo, IvrService
from pbx_services.cluster.prompts import PromptInfo, PromptService
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.admin_views import (
    add_page,
    answer_not_found,
    api_errors,
    attempt,
    delete_then_redirect,
    edit_page,
    form_bool,
    form_int,
    form_text,
    found_or_404,
    json_body,
    raise_if,
    request_tenant,
    tenant_choices,
    tenant_or_default,
)
from pbx_services.portal.auth import audit
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import FieldErrors
from pbx_services.portal.navigation import NavItem

blueprint = Blueprint("ivr", __name__)
navigation = (NavItem("IVR menus", "ivr.index", order=40), NavItem("Prompts", "ivr.prompts", order=45))
answer_not_found(blueprint)

MENU_FIELDS = {"ivr menu number": "number", "number": "number", "name": "name", "greeting": "greeting",
               "option": "options", "ivr menu": "options", "timeout prompt": "timeout_prompt",
               "invalid prompt": "invalid_prompt", "timeout": "timeout",
               "inter-digit timeout": "inter_digit_timeout", "retries": "retries",
               "final destination": "final_destination", "tenant": "tenant"}
"""What the IVR service's messages start with -> the form's field."""
PROMPT_FIELDS = {"prompt name": "name", "voice": "voice", "file": "file", "prompt": "file",
                 "tenant": "tenant"}
NUMBERS = {"timeout": 5, "inter_digit_timeout": 3, "retries": 3}
DEFAULTS = {"timeout": "5", "inter_digit_timeout": "3", "retries": "3", "final_destination": "hangup"}


def _menus() -> IvrService:
    return portal_context().service(IvrService)


def _prompts() -> PromptService:
    return portal_context().service(PromptService)


def parse_options(value: Any, errors: FieldErrors) -> dict[str, str]:
    """Digits -> destination, from "1=1001" lines (a form) or a JSON object."""
    if isinstance(value, dict):
        return {str(digits): str(destination) for digits, destination in value.items()}
    options: dict[str, str] = {}
    for line in str(value or "").replace(",", "\n").splitlines():
        if not line.strip():
            continue
        digits, equals, destination = line.partition("=")
        if not equals or not digits.strip() or not destination.strip():
            errors.add("options", f"option {line.strip()[:40]!r}: expected DIGITS=DESTINATION, like 1=201 or "
                                  "9=repeat")
        elif digits.strip() in options:
            errors.add("options", f"option {digits.strip()} is given twice")
        else:
            options[digits.strip()] = destination.strip()
    return options


def _save_menu(form: Mapping[str, Any], tenant: str | None, *, number: str | None = None) -> IvrMenuInfo:
    errors = FieldErrors()
    numbers = {name: form_int(form, name, errors, default) for name, default in NUMBERS.items()}
    options = parse_options(form.get("options"), errors)
    raise_if(errors)
    menu = _menus().add_menu(
        number or form_text(form, "number") or "", greeting=form_text(form, "greeting") or "",
        options=options,
        timeout=numbers["timeout"], inter_digit_timeout=numbers["inter_digit_timeout"],
        retries=numbers["retries"], invalid_prompt=form_text(form, "invalid_prompt"),
        timeout_prompt=form_text(form, "timeout_prompt"),
        final_destination=form_text(form, "final_destination") or "hangup",
        dial_by_extension=form_bool(form, "dial_by_extension"), name=form_text(form, "name"),
        tenant_domain=tenant, replace=number is not None)
    audit("ivr.change" if number else "ivr.add", f"{menu.number}@{menu.tenant_domain}")
    return menu


def _menu(number: str, tenant: str | None) -> IvrMenuInfo:
    return found_or_404(_menus().list_menus(tenant), "number", number, "IVR menu")


def _delete_menu(number: str, tenant: str | None) -> None:
    _menus().delete_menu(number, tenant)
    audit("ivr.delete", f"{number}@{tenant_or_default(tenant)}")


def _add_prompt(name: str, *, tenant: str | None, wav: tuple[bytes, str] | None = None,
                text: str | None = None, voice: str = "en", replace: bool = False) -> PromptInfo:
    """A prompt from a WAV file (data, file name) or spoken from `text`."""
    if wav is not None:
        data, file_name = wav
        audio = import_wav(data, f"file {file_name}")
        prompt = _prompts().add(name, audio, f"file: {file_name}", tenant_domain=tenant, replace=replace)
    elif text:
        prompt = _prompts().say(text, name, tenant_domain=tenant, voice=voice, replace=replace)
    else:
        raise InvalidValue("file: choose a WAV file, or give a text to say")
    audit("prompt.add", f"{prompt.name}@{tenant_or_default(tenant)}",
          prompt.source)
    return prompt


def _delete_prompt(name: str, tenant: str | None) -> None:
    _prompts().delete(name, tenant)
    audit("prompt.delete", f"{name}@{tenant_or_default(tenant)}")


def _form_of(menu: IvrMenuInfo) -> dict[str, str]:
    form = {"number": menu.number, "name": menu.name or "", "greeting": menu.greeting,
            "options": "\n".join(f"{digits}={destination}" for digits, destination in menu.options.items()),
            "invalid_prompt": menu.invalid_prompt or "", "timeout_prompt": menu.timeout_prompt or "",
            "final_destination": menu.final_destination,
            **{name: str(getattr(menu, name)) for name in NUMBERS}}
    if menu.dial_by_extension:
        form["dial_by_extension"] = "on"
    return form


def _page_context(tenant: str | None) -> dict[str, Any]:
    prompts = _prompts().list(tenant)
    return {"tenant": tenant, "tenant_options": [(d, d) for d in tenant_choices()],
            "default_domain": portal_context().config.callmanager.default_domain, "prompts": prompts,
            "prompt_options": [("", "none")] + [(p.name, p.name) for p in prompts]}


# -- pages ----------------------------------------------------------------------------------------

@blueprint.route("/ivr")
def index() -> Any:
    tenant = request_tenant()
    return render_template("ivr/index.html", menus=_menus().list_menus(tenant), form=DEFAULTS,
                           errors=FieldErrors(), **_page_context(tenant))


@blueprint.route("/ivr", methods=["POST"])
def add() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _save_menu(request.form, tenant), fields=MENU_FIELDS,
                    page_again=lambda form, errors: render_template(
                        "ivr/index.html", menus=_menus().list_menus(tenant), form=form, errors=errors,
                        **_page_context(tenant)),
                    done=lambda menu: (f"IVR menu {menu.number} added", url_for("ivr.index", tenant=tenant)))


@blueprint.route("/ivr/<number>", methods=["GET", "POST"])
def edit(number: str) -> Any:
    tenant = request_tenant()
    menu = _menu(number, tenant)
    return edit_page("ivr/edit.html", current=_form_of(menu),
                     save=lambda: _save_menu(request.form, tenant, number=number), fields=MENU_FIELDS,
                     done=f"IVR menu {number} changed", done_to=url_for("ivr.index", tenant=tenant),
                     menu=menu, **_page_context(tenant))


@blueprint.route("/ivr/<number>/delete", methods=["POST"])
def delete(number: str) -> Any:
    tenant = request_tenant()
    return delete_then_redirect(lambda: _delete_menu(number, tenant), done=f"IVR menu {number} deleted",
                                refused_to=url_for("ivr.edit", number=number, tenant=tenant),
                                done_to=url_for("ivr.index", tenant=tenant))


@blueprint.route("/ivr/prompts")
def prompts() -> Any:
    return render_template("ivr/prompts.html", form={"voice": "en"}, errors=FieldErrors(),
                           **_page_context(request_tenant()))


@blueprint.route("/ivr/prompts", methods=["POST"])
def add_prompt() -> Any:
    tenant = request_tenant()
    upload = request.files.get("file")
    wav = (upload.read(), upload.filename) if upload is not None and upload.filename else None
    prompt, errors = attempt(lambda: _add_prompt(
        form_text(request.form, "name") or "", tenant=tenant, wav=wav, text=form_text(request.form, "text"),
        voice=form_text(request.form, "voice") or "en", replace=form_bool(request.form, "replace")),
        PROMPT_FIELDS)
    if prompt is None:
        return render_template("ivr/prompts.html", form=request.form, errors=errors,
                               **_page_context(tenant)), 400
    flash(f"prompt {prompt.name} added ({prompt.duration:.1f} s)")
    return redirect(url_for("ivr.prompts", tenant=tenant))


@blueprint.route("/ivr/prompts/<name>/delete", methods=["POST"])
def delete_prompt(name: str) -> Any:
    tenant = request_tenant()
    try:
        _delete_prompt(name, tenant)
        flash(f"prompt {name} deleted")
    except InvalidValue as exc:
        flash(str(exc))
    return redirect(url_for("ivr.prompts", tenant=tenant))


# -- API ------------------------------------------------------------------------------------------

@blueprint.route("/api/v1/ivr/menus")
def api_menus() -> Any:
    """A tenant's IVR menus with their options (query: tenant; default: the default tenant)."""
    with api_errors():
        menus = _menus().list_menus(request_tenant())
    return jsonify(menus=[dataclasses.asdict(menu) for menu in menus])


@blueprint.route("/api/v1/ivr/menus", methods=["POST"])
def api_add_menu() -> Any:
    """Add a menu: {"number", "greeting" (a prompt), "options" ({"1": "1001", "9": "repeat"}), "tenant"?,
    "name"?, "timeout"?, "inter_digit_timeout"?, "retries"?, "invalid_prompt"?, "timeout_prompt"?,
    "final_destination"?, "dial_by_extension"?}."""
    body = json_body()
    with api_errors(MENU_FIELDS):
        menu = _save_menu(body, request_tenant(body))
    return jsonify(dataclasses.asdict(menu)), 201


@blueprint.route("/api/v1/ivr/menus/<number>")
def api_menu(number: str) -> Any:
    """One menu (query: tenant)."""
    with api_errors():
        return jsonify(dataclasses.asdict(_menu(number, request_tenant())))


@blueprint.route("/api/v1/ivr/menus/<number>", methods=["PUT"])
def api_replace_menu(number: str) -> Any:
    """Change a menu: every setting as for adding one."""
    body = json_body()
    with api_errors(MENU_FIELDS):
        menu = _save_menu(body, request_tenant(body), number=number)
    return jsonify(dataclasses.asdict(menu))


@blueprint.route("/api/v1/ivr/menus/<number>", methods=["DELETE"])
def api_delete_menu(number: str) -> Any:
    """Delete a menu (query: tenant)."""
    with api_errors():
        _delete_menu(number, request_tenant())
    return jsonify(deleted=number)


@blueprint.route("/api/v1/ivr/prompts")
def api_prompts() -> Any:
    """A tenant's prompts: name, duration (s), source (query: tenant)."""
    with api_errors():
        prompts = _prompts().list(request_tenant())
    return jsonify(prompts=[dataclasses.asdict(prompt) for prompt in prompts])


@blueprint.route("/api/v1/ivr/prompts", methods=["POST"])
def api_add_prompt() -> Any:
    """Add a prompt spoken by espeak-ng: {"name", "text", "voice"?, "tenant"?, "replace"?}.

    A WAV file is uploaded as multipart/form-data (fields name, file, tenant) with a session's CSRF token."""
    body = json_body()
    with api_errors(PROMPT_FIELDS):
        prompt = _add_prompt(str(body.get("name") or ""), tenant=request_tenant(body),
                             text=form_text(body, "text"), voice=form_text(body, "voice") or "en",
                             replace=form_bool(body, "replace"))
    return jsonify(dataclasses.asdict(prompt)), 201


@blueprint.route("/api/v1/ivr/prompts/<name>", methods=["DELETE"])
def api_delete_prompt(name: str) -> Any:
    """Delete a prompt no menu plays (query: tenant)."""
    with api_errors():
        _delete_prompt(name, request_tenant())
    return jsonify(deleted=name)
