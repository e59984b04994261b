"""Standing instructions (delayed, recurring, watches, follow-ups) and their firings."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "instructions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False, index=True),
        sa.Column("conversation", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("words", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("action", sa.String(200)),
        sa.Column("args", sa.JSON),
        sa.Column("next_due", sa.String(40), index=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("fired", sa.Integer, nullable=False, server_default="0"),
        sa.Column("note", sa.Text),
    )
    op.create_table(
        "firings",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("instruction", sa.String(32), nullable=False, index=True),
        sa.Column("scheduled_for", sa.String(40), nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("late", sa.Integer, nullable=False, server_default="0"),
        sa.Column("turn", sa.String(64), nullable=False),
        sa.Column("result", sa.JSON),
    )


def downgrade() -> None:
    op.drop_table("firings")
    op.drop_table("instructions")
