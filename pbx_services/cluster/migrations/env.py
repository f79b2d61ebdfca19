"""Alembic environment: the URL comes from `config.attributes["url"]` (set by
`database.alembic_config`) or, for hand-run alembic, from `sqlalchemy.url`."""

from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext

from pbx_services.cluster.database import create_engine_for
from pbx_services.cluster.models import Base
from pbx_services.cluster.models.base import UtcDateTime

config = context.config
url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("no database URL: set config.attributes['url'] or sqlalchemy.url")


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Write our column types as the plain SQL types they store, so that migrations never
    import application code that may change after them."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return repr(sa.DateTime())
    return False


# render_as_batch: SQLite cannot ALTER most things, batch mode copies the table instead.
options: dict[str, Any] = {
    "target_metadata": Base.metadata,
    "render_as_batch": True,
    "compare_type": True,
    "render_item": render_item,
}

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
