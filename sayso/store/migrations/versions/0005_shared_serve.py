"""Shared serving state: the token revocation epoch, and rate-limit buckets shared by hosts on PostgreSQL."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    epoch = op.create_table(
        "token_epoch",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.Integer, nullable=False),
    )
    # One row from the start, so a revocation only ever updates it.
    op.bulk_insert(epoch, [{"id": 1, "epoch": 0}])
    # Buckets are disposable: unlogged on PostgreSQL, so taking one writes no WAL and waits for no flush
    # (after a crash the table is empty: every bucket full).
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "rate_buckets",
        sa.Column("who", sa.String(128), primary_key=True),
        sa.Column("level", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        prefixes=unlogged,
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_table("token_epoch")
