"""PostgreSQL chains audit records in the database: ``sayso_audit_append`` locks the chain's head, gives each
record its seq, previous hash and hash, inserts them and moves the head, in one statement, so the one lock
every process's writes queue for is held with no Python and no round trip in between (the statement is sent
in one message with the COMMIT: ``PostgresStore.write``).

The records come as one JSON array of objects, in order. Each one's hash is ``sha256`` over the previous
hash, a newline, ``[``, its seq, and its ``payload`` (hex): the rest of what ``sayso.audit`` hashes (the
canonical JSON of its other fields, a newline, its canonical detail), encoded by Python as UTF-8, so the
database never re-encodes what is hashed. The arguments are read before the head is locked. SQLite has no
such function: its write lock, taken at BEGIN, already orders appends, and Python chains them.
"""

from alembic import op

revision = "0010"
down_revision = "0009"

_APPEND = r"""
create function sayso_audit_append(records json) returns void language plpgsql as $$
declare
    items json[] := array(select value from json_array_elements(records) with ordinality order by ordinality);
    payloads bytea[] := array(select decode(item->>'payload', 'hex') from unnest(items) with ordinality
                              as t(item, n) order by n);
    head_seq integer;
    head_hash text;
    next_hash text;
begin
    select h.seq, h.hash into strict head_seq, head_hash from audit_head h where h.id = 1 for update;
    for i in 1 .. coalesce(cardinality(items), 0) loop
        head_seq := head_seq + 1;
        next_hash := encode(sha256(convert_to(head_hash || E'\n[' || head_seq::text, 'UTF8') || payloads[i]),
                            'hex');
        insert into audit (seq, id, at, actor, channel, conversation, turn, event, action, status, detail,
                           prev_hash, hash)
        values (head_seq, items[i]->>'id', items[i]->>'at', items[i]->>'actor', items[i]->>'channel',
                items[i]->>'conversation', items[i]->>'turn', items[i]->>'event', items[i]->>'action',
                items[i]->>'status', (items[i]->>'detail')::json, head_hash, next_hash);
        head_hash := next_hash;
    end loop;
    update audit_head set seq = head_seq, hash = head_hash where id = 1;
end
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("drop function sayso_audit_append(json)")
