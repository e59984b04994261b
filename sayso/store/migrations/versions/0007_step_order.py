"""The order in which steps finished: ``steps.seq``, a sequence, so "the last step" never depends on a clock.

Steps recorded before this revision are numbered in the order of their effect records in the audit chain
(appended in the transaction that finished each step, so that order is the order of execution); a step
with no effect record (failed, skipped, never run) keeps no number.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

_audit = sa.table("audit", sa.column("seq", sa.Integer), sa.column("event", sa.String),
                  sa.column("status", sa.String), sa.column("detail", sa.JSON))
_steps = sa.table("steps", sa.column("key", sa.String), sa.column("seq", sa.Integer))


def upgrade() -> None:
    op.add_column("steps", sa.Column("seq", sa.Integer, nullable=True))
    op.create_index("ix_steps_seq", "steps", ["seq"])
    bind = op.get_bind()
    keys = set(bind.execute(sa.select(_steps.c.key)).scalars())
    order: dict[str, int] = {}
    effects = sa.select(sa.cast(_audit.c.detail, sa.Text)).where(
        _audit.c.event == "effect", _audit.c.status == "ok").order_by(_audit.c.seq)
    for (text,) in bind.execute(effects):
        try:
            key = json.loads(text).get("idempotency_key")
        except (ValueError, AttributeError):  # an unreadable record numbers nothing; `audit verify` reports it
            continue
        if key in keys and key not in order:
            order[key] = len(order) + 1
    if order:
        bind.execute(sa.update(_steps).where(_steps.c.key == sa.bindparam("b_key"))
                     .values(seq=sa.bindparam("b_seq")),
                     [{"b_key": key, "b_seq": seq} for key, seq in order.items()])
    if bind.dialect.name == "postgresql":
        op.execute(sa.schema.CreateSequence(sa.Sequence("steps_seq", start=len(order) + 1)))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence("steps_seq")))
    op.drop_index("ix_steps_seq", "steps")
    op.drop_column("steps", "seq")
