"""Conversation messages, and when a conversation last changed."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("conversations", sa.Column("updated_at", sa.String(40), nullable=True))
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation", sa.String(64), nullable=False, index=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("turn", sa.String(64)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(32)),
        sa.Column("data", sa.JSON),
    )


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_column("conversations", "updated_at")
