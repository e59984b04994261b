"""The Slack channel: which sayso conversation each Slack thread is (per person), and the deliveries already
taken (event ids, click payloads), so that Slack's retries and double clicks are handled once."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "slack_threads",
        sa.Column("team", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("thread_ts", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("conversation", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "slack_seen",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slack_seen")
    op.drop_table("slack_threads")
