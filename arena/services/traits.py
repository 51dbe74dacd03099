"""Battle traits: each side's style and the conversation's categories, stored once per battle
for the style-controlled and per-category leaderboards (arena.style, arena.categories)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from arena.categories import Traits, battle_traits
from arena.models import Battle, BattleTraits, Reply, Turn
from arena.style import Style, markdown_counts, tokens_estimate


def traits_row(battle_id: uuid.UUID, style_a: Style, style_b: Style, traits: Traits) -> BattleTraits:
    return BattleTraits(
        battle_id=battle_id,
        tokens_a=style_a.tokens, headers_a=style_a.headers, lists_a=style_a.lists, bold_a=style_a.bold,
        tokens_b=style_b.tokens, headers_b=style_b.headers, lists_b=style_b.lists, bold_b=style_b.bold,
        **traits._asdict(),
    )


def _side_style(replies: list[Reply]) -> Style:
    """A side's style over its answers: the markdown stored as each reply finished (counted now
    for one stored before that was kept), the model server's token counts (estimated from the
    text where it gave none, as for imported replies)."""
    total = Style(0, 0, 0, 0)
    for r in replies:
        if r.header_count is None or r.list_count is None or r.bold_count is None:
            headers, lists, bold = markdown_counts(r.text)
        else:
            headers, lists, bold = r.header_count, r.list_count, r.bold_count
        tokens = r.token_count or tokens_estimate(r.text)
        total = Style(total.tokens + tokens, total.headers + headers, total.lists + lists, total.bold + bold)
    return total


def battle_traits_store(*, battle_ids: Iterable[uuid.UUID]) -> int:
    """Compute and store the traits of these battles that have none yet, from the turns voted on
    (each turn's current attempt). Returns how many were stored."""
    wanted = set(battle_ids)  # read once: any iterable
    missing = wanted - set(BattleTraits.objects.filter(battle_id__in=wanted).values_list("battle_id", flat=True))
    if not missing:
        return 0
    turns = list(Turn.objects.filter(battle_id__in=missing).order_by("battle_id", "index"))
    current = {t.id: t.attempt for t in turns}
    replies: dict[tuple[int, str], list[Reply]] = defaultdict(list)
    for reply in Reply.objects.filter(turn_id__in=current).only(
        "turn_id", "side", "attempt", "text", "token_count", "header_count", "list_count", "bold_count",
    ):
        if reply.attempt == current[reply.turn_id]:
            replies[(reply.turn_id, reply.side)].append(reply)
    by_battle: dict[uuid.UUID, list[Turn]] = defaultdict(list)
    for turn in turns:
        by_battle[turn.battle_id].append(turn)
    rows = []
    for battle_id, battle_turns in by_battle.items():
        sides = {side: [r for t in battle_turns for r in replies[(t.id, side)]] for side in ("a", "b")}
        traits = battle_traits(
            [t.prompt for t in battle_turns], [r.text for r in sides["a"]], [r.text for r in sides["b"]]
        )
        rows.append(traits_row(battle_id, _side_style(sides["a"]), _side_style(sides["b"]), traits))
    BattleTraits.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent run may have stored some
    return len(rows)



def battles_traits_fill(*, batch_size: int = 1000) -> int:
    """Store the traits of every counted battle without them (battles counted before traits
    were kept); returns how many."""
    stored = 0
    after = None
    # In id order from the last seen: a battle with nothing to read (imported without a
    # conversation or conv_metadata) stays without traits and is not asked for again.
    while True:
        todo = Battle.objects.filter(vote__counted=True, traits__isnull=True).order_by("id")
        if after is not None:
            todo = todo.filter(id__gt=after)
        ids = list(todo.values_list("id", flat=True)[:batch_size])
        if not ids:
            return stored
        stored += battle_traits_store(battle_ids=ids)
        after = ids[-1]
