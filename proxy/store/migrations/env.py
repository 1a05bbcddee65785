"""Alembic environment: dmgate runs migrations itself at start, on the connection it is
given (`config.attributes["connection"]`), so no alembic.ini or URL lives here."""

from alembic import context

from proxy.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
