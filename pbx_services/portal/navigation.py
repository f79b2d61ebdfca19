"""The menu of the portal: each blueprint module lists its entries in `navigation`."""

from __future__ import annotations

from dataclasses import dataclass

from pbx_services.cluster.models import AdminRole

ALL_ROLES = frozenset(AdminRole)


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    endpoint: str
    """Flask endpoint of the page (`"users.index"`)."""
    roles: frozenset[AdminRole] = ALL_ROLES
    """Who sees the entry (the view itself must check too: `roles_required`)."""
    order: int = 100
    """Place in the menu, smaller first (cluster 10, tenants 20, users 30, ... audit 90)."""
