"""Alembic environment: runs against the connection IMTS hands over (see ``imts.store.db.migrate``)."""

from alembic import context

from imts.store.models import Base

config = context.config
target_metadata = Base.metadata

connection = config.attributes.get("connection")
if connection is None:  # `alembic` CLI use: take the URL from the settings
    from imts.core.settings import get_settings
    from imts.store.db import make_engine

    with make_engine(get_settings().db_url).begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
