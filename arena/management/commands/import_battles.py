import hashlib
import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from arena import services
from arena.battle_files import BattleFileError, battles_read, conversation_turns, record_traits
from arena.models import Battle, BattleTraits, ChatModel, Reply, Turn, Vote
from arena.services.traits import traits_row
from arena.text import text_names_identity

BATCH = 2000


def _source_id(record) -> str:
    """question_id when given, else a digest of the record: re-importing a file adds nothing."""
    qid = record.raw.get("question_id")
    if isinstance(qid, str) and qid:
        return f"q:{qid}"[:200]
    canonical = json.dumps(record.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class Command(BaseCommand):
    help = "Import battles in the clean_battle schema (JSON array or JSON lines); idempotent."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, file, no_progress, **options):
        try:
            records = list(tqdm(battles_read(file), desc="reading", unit=" battles", disable=no_progress))
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        except BattleFileError as exc:
            raise CommandError(f"{exc}; nothing was imported") from None
        try:
            with transaction.atomic():  # all or nothing
                created = self._import(records, no_progress)
                counted = services.leaderboard_rebuild()
        except BattleFileError as exc:  # a record's conv_metadata, read as its battle is stored
            raise CommandError(f"{exc}; nothing was imported") from None
        skipped = len(records) - created
        self.stdout.write(f"Imported {created} battles ({skipped} already present); {counted} votes now counted.")

    def _import(self, records, no_progress: bool) -> int:
        names = {r.model_a for r in records} | {r.model_b for r in records}
        models = {m.name: m for m in ChatModel.objects.filter(name__in=names)}
        for name in sorted(names - models.keys()):
            # Known only from imported data: rated, never drawn into new battles.
            models[name] = ChatModel.objects.create(name=name, endpoint_url="", enabled=False)
        created = 0
        for start in tqdm(range(0, len(records), BATCH), desc="importing", unit=" batches", disable=no_progress):
            chunk = records[start:start + BATCH]
            ids = [_source_id(r) for r in chunk]
            existing = set(Battle.objects.filter(source_id__in=ids).values_list("source_id", flat=True))
            fresh = []
            for record, source_id in zip(chunk, ids, strict=True):
                if source_id in existing:
                    continue
                existing.add(source_id)  # a duplicate inside the file counts once too
                fresh.append((record, source_id))
            created += self._battles_create(fresh, models)
        return created

    def _battles_create(self, fresh, models) -> int:
        battles, votes, turns, replies, traits = [], [], [], [], []
        for record, source_id in fresh:
            when = datetime.fromtimestamp(record.tstamp, tz=UTC) if record.tstamp is not None else None
            raw = record.raw
            battle = Battle(
                model_a=models[record.model_a], model_b=models[record.model_b], client_id="import",
                anonymous=raw.get("anony", True) is not False, source_id=source_id,
                judge=str(raw.get("judge") or "")[:200],
                draw_probability=raw.get("draw_probability"), draw_pairs=raw.get("draw_pairs"),
            )
            if when:
                battle.created_at = when
            battles.append(battle)
            reasoning = raw.get("judge_reasoning")
            vote = Vote(
                battle=battle, outcome=Vote.Outcome.from_code(record.outcome), client_id="import",
                reasoning=reasoning if isinstance(reasoning, str) else "",
            )
            if when:
                vote.created_at = when
            votes.append(vote)
            if found := record_traits(record.line, raw):
                traits.append(traits_row(battle.id, *found))
            turns_of = conversation_turns(raw.get("conversation_a") or [], raw.get("conversation_b") or [])
            for index, (prompt, answer_a, answer_b) in enumerate(turns_of):
                turn = Turn(battle=battle, index=index, prompt=prompt)
                turns.append(turn)
                for side, text, model in (("a", answer_a, battle.model_a), ("b", answer_b, battle.model_b)):
                    replies.append(Reply(turn=turn, side=side, model=model, status=Reply.Status.DONE, text=text,
                                         names_identity=text_names_identity(text)))
        Battle.objects.bulk_create(battles)
        Vote.objects.bulk_create(votes)
        Turn.objects.bulk_create(turns)
        Reply.objects.bulk_create(replies)
        BattleTraits.objects.bulk_create(traits)
        flagged = {r.turn.battle_id for r in replies if r.names_identity}
        if flagged:
            Vote.objects.filter(battle_id__in=flagged).update(
                identity_flagged=True, flag_reasons=["names_identity"], review=Vote.Review.PENDING
            )
        return len(battles)
