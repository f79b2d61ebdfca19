"""What the Call Manager reports of the trunks, as administrators read it: each registration's
and each OPTIONS probe's state (`pbx trunk list` and the portal's trunks page say the same).

The Call Manager of this host is asked, on its control API (`GET /trunks`): behind the VIP, the
one carrying the calls; each of its workers' reports is merged there.
"""

from typing import Any

from pbx_services.cluster.config import PbxConfig
from pbx_services.cluster.control_client import CallManagerUnavailable, ask_call_manager
from pbx_services.cluster.models import NumberFormat
from pbx_services.cluster.trunks import TrunkInfo

TrunkStates = dict[tuple[str, str], dict[str, Any]]
"""(tenant domain, trunk name) -> what the Call Manager reports of it."""
UNKNOWN = "unknown (no Call Manager reports it)"


def reported_states(config: PbxConfig) -> tuple[TrunkStates, TrunkStates, str | None]:
    """The registrations and the probes the Call Manager reports, and None; or nothing and why
    (it does not answer)."""
    try:
        reported = ask_call_manager(config, ["trunks"])
    except CallManagerUnavailable as exc:
        return {}, {}, f"the trunks' registrations and probes are unknown: {exc}"
    return ({(entry["tenant"], entry["name"]): entry for entry in reported.get("trunks", [])},
            {(entry["tenant"], entry["name"]): entry for entry in reported.get("probes", [])}, None)


TrunkRow = tuple[TrunkInfo, str, str]
"""A trunk, its registration's state and its probe's, in words."""


def with_states(trunks: list[TrunkInfo], config: PbxConfig) -> tuple[list[TrunkRow], str | None]:
    """Each trunk with its registration's and its probe's state in words; and why they are
    unknown, if they are (the Call Manager is asked only when a trunk registers or is probed)."""
    asked = any(trunk.register or (trunk.enabled and trunk.probe_interval) for trunk in trunks)
    registrations, probes, problem = reported_states(config) if asked else ({}, {}, None)
    return [(trunk, registration_text(trunk, registrations.get((trunk.tenant_domain, trunk.name))),
             probe_text(trunk, probes.get((trunk.tenant_domain, trunk.name)))) for trunk in trunks], problem


def numbers_text(trunk: TrunkInfo) -> str:
    if trunk.number_format == NumberFormat.AS_DIALLED.value:
        return trunk.number_format
    prefixes = "/".join(p for p in (trunk.national_prefix, trunk.international_prefix) if p)
    return f"{trunk.number_format} +{trunk.country_code} {prefixes}"


def probe_text(trunk: TrunkInfo, probe: dict[str, Any] | None) -> str:
    if not trunk.probe_interval or not trunk.enabled:
        return "off"
    if probe is None:
        return UNKNOWN
    seen = f" ({probe['reason']})" if probe.get("reason") else ""
    if probe["state"] != "down":
        return f"up{seen}"
    down, workers = int(probe["workers_down"]), int(probe["workers"])
    where = f" on {down} of {workers} workers" if down < workers else ""
    return f"down{where}: {probe['reason']}"


def registration_text(trunk: TrunkInfo, registration: dict[str, Any] | None) -> str:
    if not trunk.register:
        return "-"
    if registration is None:
        return UNKNOWN
    state = registration["state"]
    if state == "registered":
        return f"registered ({registration['code']}, expires in {registration['expires_in']} s)"
    if state == "failed":
        return f"failed: {registration['code']} {registration['reason']}"
    return str(state)
