"""tenancy: tenants own projects; project names unique per tenant; model versions unique per project

Existing workspaces upgrade in place: every distinct ``projects.tenant`` value becomes a tenant row
(``default`` always exists), each project points at its tenant, and model versions keep their numbers.

Revision ID: 0800_tenants
Revises: 0700_merge_heads
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from imts.core.ids import new_id

revision: str = "0800_tenants"
down_revision: str | Sequence[str] | None = "0700_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Unnamed constraints of the first schema, named so batch mode (SQLite) can find and drop them.
CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    conn = op.get_bind()
    names = {r[0] or "default" for r in conn.execute(sa.text("SELECT DISTINCT tenant FROM projects"))}
    names.add("default")
    now = datetime.now(UTC)
    tenants = sa.table(
        "tenants", sa.column("id", sa.String), sa.column("name", sa.String), sa.column("created_at")
    )
    ids = {n: new_id("tnt") for n in sorted(names)}
    op.bulk_insert(tenants, [{"id": ids[n], "name": n, "created_at": now} for n in sorted(names)])

    pg = conn.dialect.name == "postgresql"
    with op.batch_alter_table("projects", naming_convention=CONVENTION) as b:
        b.add_column(sa.Column("tenant_id", sa.String(length=40), nullable=True))
    for name, tid in ids.items():
        conn.execute(
            sa.text("UPDATE projects SET tenant_id = :t WHERE coalesce(tenant, 'default') = :n"),
            {"t": tid, "n": name},
        )
    with op.batch_alter_table("projects", naming_convention=CONVENTION) as b:
        b.alter_column("tenant_id", existing_type=sa.String(length=40), nullable=False)
        b.drop_constraint("projects_name_key" if pg else "uq_projects_name", type_="unique")
        b.drop_column("tenant")
        b.create_unique_constraint("uq_projects_tenant_name", ["tenant_id", "name"])
        b.create_foreign_key("fk_projects_tenant_id_tenants", "tenants", ["tenant_id"], ["id"])
        b.create_index("ix_projects_tenant_id", ["tenant_id"], unique=False)
    with op.batch_alter_table("model_versions", naming_convention=CONVENTION) as b:
        b.drop_constraint(
            "model_versions_name_version_key" if pg else "uq_model_versions_name_version", type_="unique"
        )
        b.create_unique_constraint("uq_model_versions_project_name", ["project_id", "name", "version"])


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as b:
        b.drop_constraint("uq_model_versions_project_name", type_="unique")
        b.create_unique_constraint("model_versions_name_version_key", ["name", "version"])
    with op.batch_alter_table("projects") as b:
        b.add_column(sa.Column("tenant", sa.String(length=100), nullable=False, server_default="default"))
    op.execute(
        "UPDATE projects SET tenant = (SELECT name FROM tenants WHERE tenants.id = projects.tenant_id)"
    )
    with op.batch_alter_table("projects") as b:
        b.drop_index("ix_projects_tenant_id")
        b.drop_constraint("fk_projects_tenant_id_tenants", type_="foreignkey")
        b.drop_constraint("uq_projects_tenant_name", type_="unique")
        b.drop_column("tenant_id")
        b.create_unique_constraint("projects_name_key", ["name"])
    op.drop_table("tenants")
