import json

from django.core.management.base import BaseCommand
from django.db.models import Prefetch

from arena.clients import judge_pseudonym
from arena.models import Battle, BattleTraits, Reply, Turn, Vote
from arena.ratings import OUTCOME_NAMES


class Command(BaseCommand):
    help = "Export voted battles in the clean_battle schema (JSON lines; a .json file gets a JSON array)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument(
            "--pseudonymise", action="store_true",
            help="write each judge as a stable digest (the same voter, unrecognisable outside this arena)",
        )

    def handle(self, *args, file, pseudonymise=False, **options):
        battles = (
            Battle.objects.filter(vote__isnull=False)
            .select_related("model_a", "model_b", "vote", "traits")
            .prefetch_related(Prefetch("turns", queryset=Turn.objects.prefetch_related(
                Prefetch("replies", queryset=Reply.objects.order_by("attempt")))))
            .order_by("vote__created_at", "id")
        )
        as_array = file.endswith(".json")
        count = 0
        with open(file, "w", encoding="utf-8") as fh:
            if as_array:
                fh.write("[\n")
            for battle in battles.iterator(chunk_size=2000):
                record = _record(battle)
                if pseudonymise:
                    record["judge"] = judge_pseudonym(record["judge"])
                fh.write(("," if as_array and count else "") + json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
            if as_array:
                fh.write("]\n")
        self.stdout.write(f"Exported {count} battles to {file}")


def _record(battle: Battle) -> dict:
    conversation: dict[str, list[dict[str, str]]] = {"a": [], "b": []}
    # Tokens of the replies shown, summed over the turns; prompt tokens only if every server said.
    usage: dict[str, dict[str, int | None]] = {s: {"prompt_tokens": 0, "completion_tokens": 0} for s in "ab"}
    for turn in battle.turns.all():
        current = {r.side: r for r in turn.replies.all() if r.attempt == turn.attempt}
        for side in ("a", "b"):
            conversation[side].append({"role": "user", "content": turn.prompt})
            reply = current.get(side)
            conversation[side].append({"role": "assistant", "content": reply.text if reply else ""})
            counts = usage[side]
            completion = counts["completion_tokens"] or 0
            counts["completion_tokens"] = completion + (reply.token_count if reply else 0)
            prompt = counts["prompt_tokens"]
            counts["prompt_tokens"] = None if prompt is None or reply is None or reply.prompt_tokens is None else (
                prompt + reply.prompt_tokens
            )
    source = battle.source_id or ""
    traits = _traits(battle)
    record = {
        "question_id": source[2:] if source.startswith("q:") else str(battle.id),
        "model_a": battle.model_a.name,
        "model_b": battle.model_b.name,
        "winner": OUTCOME_NAMES[Vote.Outcome(battle.vote.outcome).code],
        "judge": battle.judge or battle.client_id,
        "turn": len(conversation["a"]) // 2,
        "anony": battle.anonymous,
        "language": "",
        "tstamp": battle.vote.created_at.timestamp(),
        "conversation_a": conversation["a"],
        "conversation_b": conversation["b"],
        "usage_a": usage["a"],
        "usage_b": usage["b"],
        # How the pair was drawn (null when unknown): the inverse-probability fit reads them.
        "draw_probability": battle.draw_probability,
        "draw_pairs": battle.draw_pairs,
        # A judge model's explanation of its verdict (judge "model:<name>"); empty for people's votes.
        "judge_reasoning": battle.vote.reasoning,
    }
    if traits is not None:
        # The public dumps' keys: a re-import (or the public arena's scripts) reads the same style.
        record["language"] = traits.language
        record["conv_metadata"] = {
            "sum_user_tokens": traits.query_tokens, "turns": traits.turns,
            "sum_assistant_a_tokens": traits.tokens_a, "header_count_a": traits.headers_a,
            "list_count_a": traits.lists_a, "bold_count_a": traits.bold_a,
            "sum_assistant_b_tokens": traits.tokens_b, "header_count_b": traits.headers_b,
            "list_count_b": traits.lists_b, "bold_count_b": traits.bold_b,
        }
    return record


def _traits(battle: Battle) -> BattleTraits | None:
    try:
        return battle.traits
    except BattleTraits.DoesNotExist:  # counted before traits were kept, or nothing to read
        return None
