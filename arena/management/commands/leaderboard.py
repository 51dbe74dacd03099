import json
import math

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from arena import ratings
from arena.battle_files import BattleFileError, battles_arrays


class Command(BaseCommand):
    help = (
        "Compute the leaderboard from a clean_battle file (JSON array or JSON lines) without "
        "touching the database: Bradley-Terry ratings, 95%% intervals, rank (UB), online Elo."
    )
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--battles", required=True, help="clean_battle file (JSON array or JSON lines)")
        parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                            help="bootstrap rounds for the intervals (default 0: analytic intervals)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--anchor", default=settings.ARENA_RATING_ANCHOR_MODEL or None,
                            help="model pinned to --anchor-rating (default: none)")
        parser.add_argument("--anchor-rating", type=float, default=settings.ARENA_RATING_ANCHOR_VALUE)
        parser.add_argument("--weighting", choices=["none", "inverse-probability"],
                            default=settings.ARENA_RATINGS_WEIGHTING,
                            help="inverse-probability: weight each vote by its draw_probability and draw_pairs")
        parser.add_argument("--judge", metavar="model:NAME",
                            help="rate only this judge model's battles (default: people's, judge models' left out)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(
        self, *args, battles, bootstrap, seed, anchor, anchor_rating, weighting, judge, json: bool, **options
    ):
        if bootstrap < 0:
            raise CommandError("--bootstrap must be >= 0")
        try:
            data = battles_arrays(battles, judge=judge)
        except FileNotFoundError:
            raise CommandError(f"No such file: {battles}") from None
        except BattleFileError as exc:
            raise CommandError(str(exc)) from None
        k = len(data.names)
        result: dict = {"battles": int(data.outcome.size), "models": []}
        if k:
            counts = ratings.counts_from_battles(data.model_a, data.model_b, data.outcome, k)
            elo = ratings.elo_online(data.model_a, data.model_b, data.outcome, k)
            anchor_spec = None
            if anchor:
                if anchor not in data.names:
                    raise CommandError(f"--anchor {anchor!r} has no battles in this file")
                anchor_spec = (data.names.index(anchor), anchor_rating)
            weighted = None
            if weighting == "inverse-probability":
                w = data.weights
                weighted = (
                    ratings.counts_from_battles(data.model_a, data.model_b, data.outcome, k, weights=w),
                    ratings.counts_from_battles(data.model_a, data.model_b, data.outcome, k, weights=w * w),
                )
            table = ratings.leaderboard_compute(
                counts, data.names, bootstrap_rounds=bootstrap, seed=seed, anchor=anchor_spec, elo=elo,
                weighted=weighted,
            )
            result["models"] = [
                {
                    "model": row.model,
                    "rating": row.rating,
                    "ci_lower": row.ci_lower,
                    "ci_upper": row.ci_upper,
                    "rank": row.rank,
                    "votes": row.votes,
                    "elo_online": row.elo_online,
                }
                for row in table.rows
            ]
        if json:
            self.stdout.write(_dumps(result))
            return
        self._table(result, bootstrap)

    def _table(self, result: dict, bootstrap: int) -> None:
        method = f"bootstrap, {bootstrap} rounds" if bootstrap else "analytic"
        self.stdout.write(f"{result['battles']} battles, {len(result['models'])} models, 95% intervals: {method}\n")
        width = max([len(m["model"]) for m in result["models"]] + [5])
        self.stdout.write(f"{'rank':>4}  {'model':<{width}}  {'rating':>7}  {'95% CI':>15}  {'votes':>8}  {'elo':>7}")
        for m in result["models"]:
            ci = f"+{m['ci_upper'] - m['rating']:.1f}/-{m['rating'] - m['ci_lower']:.1f}"
            self.stdout.write(
                f"{m['rank']:>4}  {m['model']:<{width}}  {m['rating']:7.1f}  {ci:>15}  "
                f"{m['votes']:>8}  {m['elo_online']:7.1f}"
            )


def _dumps(result: dict) -> str:
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, np.generic):
            return x.item()
        return x

    rows = [{k: clean(v) for k, v in row.items()} for row in result["models"]]
    return json.dumps({"battles": result["battles"], "models": rows})
