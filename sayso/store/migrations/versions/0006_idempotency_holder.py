"""Idempotency keys name the process that holds them and what their request runs as, so that a key whose
process died resolves from what the request really did instead of answering "in progress" forever."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("idempotency") as table:
        table.add_column(sa.Column("holder", sa.String(200)))  # host:pid:nonce of the process running it
        table.add_column(sa.Column("held_until", sa.Float))  # epoch seconds; past it, the hold has lapsed
        table.add_column(sa.Column("turn", sa.String(64)))  # the turn the request runs as
        table.add_column(sa.Column("plan", sa.String(64)))  # the plan it runs, when known before (a confirmation)


def downgrade() -> None:
    with op.batch_alter_table("idempotency") as table:
        for name in ("plan", "turn", "held_until", "holder"):
            table.drop_column(name)
