"""A battle's rows as the websocket's hot paths read them: plain SQL, plain tuples.

Joining a battle, voting and starting one each read the battle and its replies. Through the ORM,
building and compiling those queries was most of the web process's CPU per vote (py-spy: the
compiler alone a quarter of its samples), so these few reads are written out once, with the
tables' and columns' names taken from the models, and run on Django's own connection (its
transaction, its pool). Portable SQL: PostgreSQL, and SQLite for a local run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache

from django.db import connection
from django.db.models import Field

from arena.models import Battle, ChatModel, Reply, Turn, Vote


@dataclass(frozen=True)
class BattleRow:
    """What the services and the state need of a battle: its id, its models, its vote if any."""

    id: uuid.UUID
    model_a_id: int
    model_b_id: int
    model_a_name: str
    model_b_name: str
    vote_outcome: str | None  # None: no vote (as of this read)

    @property
    def voted(self) -> bool:
        return self.vote_outcome is not None


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(model, field: str) -> str:
    return _q(model._meta.get_field(field).column)


@cache
def _battle_sql(for_update: bool) -> str:
    b, m, v = _q(Battle._meta.db_table), _q(ChatModel._meta.db_table), _q(Vote._meta.db_table)
    sql = (
        f"SELECT b.{_column(Battle, 'id')}, b.{_column(Battle, 'model_a')}, b.{_column(Battle, 'model_b')}, "
        f"ma.{_column(ChatModel, 'name')}, mb.{_column(ChatModel, 'name')}, v.{_column(Vote, 'outcome')} "
        f"FROM {b} b "
        f"JOIN {m} ma ON ma.{_column(ChatModel, 'id')} = b.{_column(Battle, 'model_a')} "
        f"JOIN {m} mb ON mb.{_column(ChatModel, 'id')} = b.{_column(Battle, 'model_b')} "
        f"LEFT JOIN {v} v ON v.{_column(Vote, 'battle')} = b.{_column(Battle, 'id')} "
        f"WHERE b.{_column(Battle, 'id')} = %s AND b.{_column(Battle, 'client_id')} = %s"
    )
    if for_update and connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF b"
    elif for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql


def _uuid(value: object) -> uuid.UUID:
    # SQLite hands back the hex string Django stored; PostgreSQL a UUID.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def battle_row(*, battle_id: uuid.UUID, client_id: str, for_update: bool = False) -> BattleRow | None:
    """The client's battle with its models' names and its vote; None if missing or another's.

    With `for_update` the battle's row is locked; a vote committed while this waited for the lock
    is then not in the row (the query's snapshot predates it), which only a caller that inserts a
    vote, refused by the one-to-one key, may accept."""
    key = Battle._meta.pk.get_db_prep_value(battle_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(_battle_sql(for_update), [key, client_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return BattleRow(_uuid(row[0]), row[1], row[2], row[3], row[4], row[5])


def _replies_from() -> str:
    r, t = _q(Reply._meta.db_table), _q(Turn._meta.db_table)
    return (
        f"FROM {r} r JOIN {t} t ON t.{_column(Turn, 'id')} = r.{_column(Reply, 'turn')} "
        f"WHERE t.{_column(Turn, 'battle')} = %s"
    )


# Every turn's current replies, as the state shows them.
STATE_FIELDS = (
    "stream_id", "index", "turn_attempt", "prompt", "side", "status", "text", "failure_reason", "failure_kind",
    "token_count", "finish_reason", "ttft_ms", "duration_ms",
)


@cache
def _state_sql() -> str:
    rc = {name: f"r.{_column(Reply, name)}" for name in (
        "stream_id", "side", "status", "text", "failure_reason", "failure_kind", "token_count", "finish_reason",
        "ttft_ms", "duration_ms", "attempt",
    )}
    index, attempt, prompt = (f"t.{_column(Turn, name)}" for name in ("index", "attempt", "prompt"))
    return (
        f"SELECT {rc['stream_id']}, {index}, {attempt}, {prompt}, {rc['side']}, {rc['status']}, {rc['text']}, "
        f"{rc['failure_reason']}, {rc['failure_kind']}, {rc['token_count']}, {rc['finish_reason']}, "
        f"{rc['ttft_ms']}, {rc['duration_ms']} "
        f"{_replies_from()} AND {rc['attempt']} = {attempt} ORDER BY {index}, {rc['side']}"
    )


def battle_state_rows(battle_id: uuid.UUID) -> list[tuple]:
    """Every turn's current replies (STATE_FIELDS), in turn order, side a first; a stream id as a UUID."""
    key = Battle._meta.pk.get_db_prep_value(battle_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(_state_sql(), [key])
        rows = cursor.fetchall()
    return [(None if row[0] is None else _uuid(row[0]), *row[1:]) for row in rows]


@cache
def _summary_sql() -> str:
    index, attempt = f"t.{_column(Turn, 'index')}", f"t.{_column(Turn, 'attempt')}"
    fields = ", ".join(f"r.{_column(Reply, name)}" for name in ("attempt", "side", "status", "failure_kind",
                                                                "names_identity"))
    return f"SELECT {index}, {attempt}, {fields} {_replies_from()}"


def battle_summary_rows(battle_id: uuid.UUID) -> list[tuple]:
    """Every reply of the battle: (turn index, turn attempt, attempt, side, status, failure kind, names identity)."""
    key = Battle._meta.pk.get_db_prep_value(battle_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(_summary_sql(), [key])
        return cursor.fetchall()


# A vote's columns as `vote_insert` writes them (the rest keep their defaults: not counted, no reasoning).
VOTE_FIELDS = ("battle", "outcome", "client_id", "user", "identity_flagged", "flag_reasons", "review", "counted",
               "reasoning", "created_at")


@cache
def _vote_insert_sql() -> str:
    columns = ", ".join(_column(Vote, name) for name in VOTE_FIELDS)
    placeholders = ", ".join(["%s"] * len(VOTE_FIELDS))
    return (
        f"INSERT INTO {_q(Vote._meta.db_table)} ({columns}) VALUES ({placeholders}) "
        f"ON CONFLICT ({_column(Vote, 'battle')}) DO NOTHING RETURNING {_column(Vote, 'id')}"
    )


def vote_insert(vote: Vote) -> bool:
    """Insert an unsaved vote, setting its id; False (nothing written) if its battle has a vote.

    One statement: through the ORM the insert was a savepoint around `create` (three round trips,
    the compiler), and the one-to-one key's conflict an IntegrityError to catch."""
    fields = [Vote._meta.get_field(name) for name in VOTE_FIELDS]
    values = [f.get_db_prep_save(getattr(vote, f.attname), connection) for f in fields if isinstance(f, Field)]
    with connection.cursor() as cursor:
        cursor.execute(_vote_insert_sql(), values)
        row = cursor.fetchone()
    if row is None:
        return False
    vote.id = row[0]
    vote._state.adding, vote._state.db = False, connection.alias
    return True
