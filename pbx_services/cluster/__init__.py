"""Cluster-wide foundations: config, the system of record (SQLAlchemy models, Alembic
migrations, data access), the user service, events, the event bus and the CDR writer."""
