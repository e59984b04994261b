"""Approvals routed to the approver: who asked whom to approve which confirmation, in whose words and why
(``approvals``), and the workspace's generated keys (``workspace_keys``: the key that signs approval links
when sayso.toml names none)."""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("confirmation", sa.String(64), primary_key=True),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("approver", sa.String(128), nullable=False, index=True),
        sa.Column("conversation", sa.String(64), nullable=False),
        sa.Column("words", sa.Text, nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("replaces", sa.String(64)),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "workspace_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workspace_keys")
    op.drop_table("approvals")
