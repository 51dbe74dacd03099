import json
import math

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from arena import ratings
from arena.battle_files import BattleFileError, battles_arrays
from arena.categories import CATEGORY_NAME, OVERALL, RULES
from arena.variants import BattleRows, variant_compute


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
        parser.add_argument("--style-control", action="store_true",
                            help="fit answer style (length, headers, lists, bold) jointly with the ratings")
        parser.add_argument("--category", metavar="NAME", default=OVERALL,
                            help="only this category's battles: coding, long_query, multi_turn, no_short, "
                                 "no_refusal, dedup or a language (english, chinese, ...)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, battles, bootstrap, seed, anchor, anchor_rating, weighting, judge, json: bool,
               style_control, category, **options):
        if bootstrap < 0:
            raise CommandError("--bootstrap must be >= 0")
        if not CATEGORY_NAME.fullmatch(category):
            raise CommandError(f"--category {category!r}: one of {', '.join([OVERALL, *RULES])} or a language")
        if style_control or category != OVERALL:
            view = self._variant(battles, judge, style_control, category, bootstrap, seed, anchor, anchor_rating,
                                 weighting)
            if json:
                self.stdout.write(_dumps(view))
            else:
                self._table(view, bootstrap)
            return
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

    def _variant(self, path, judge: str | None, style: bool, category: str, bootstrap: int, seed: int, anchor,
                 anchor_rating: float, weighting: str) -> dict:
        try:
            data = battles_arrays(path, judge, style=True, categories=category != OVERALL)
        except FileNotFoundError:
            raise CommandError(f"No such file: {path}") from None
        except BattleFileError as exc:
            raise CommandError(str(exc)) from None
        assert data.style_a is not None and data.style_b is not None and data.has_style is not None
        if style and data.outcome.size and not data.has_style.any():
            raise CommandError(f"--style-control: no battle in {path} has conversations or conv_metadata")
        if anchor and anchor not in data.names:
            raise CommandError(f"--anchor {anchor!r} has no battles in this file")
        rows = BattleRows(data.names, data.model_a, data.model_b, data.outcome, data.weights, data.style_a,
                          data.style_b, data.has_style, data.traits)
        payload = variant_compute(
            rows, style=style, category=category, min_battles=0, weighted=weighting == "inverse-probability",
            bootstrap_rounds=bootstrap, seed=seed, anchor=(anchor, anchor_rating) if anchor else None,
        )
        keys = ("model", "rating", "ci_lower", "ci_upper", "rank", "votes", "elo_online")
        extra = ("rating_plain", "rank_plain", "rank_change") if style else ()
        result = {
            "battles": payload["battles"], "style_control": style, "category": category,
            "models": [{k: row[k] for k in (*keys, *extra)} for row in payload["models"]],
        }
        if style:
            result["coefficients"] = payload["coefficients"]
        return result

    def _table(self, result: dict, bootstrap: int) -> None:
        method = f"bootstrap, {bootstrap} rounds" if bootstrap else "analytic"
        view = []
        if result.get("category", OVERALL) != OVERALL:
            view.append(f"category {result['category']}")
        if result.get("style_control"):
            view.append("style-controlled")
        scope = f" ({', '.join(view)})" if view else ""
        self.stdout.write(
            f"{result['battles']} battles{scope}, {len(result['models'])} models, 95% intervals: {method}\n"
        )
        width = max([len(m["model"]) for m in result["models"]] + [5])
        self.stdout.write(f"{'rank':>4}  {'model':<{width}}  {'rating':>7}  {'95% CI':>15}  {'votes':>8}  {'elo':>7}")
        for m in result["models"]:
            ci = f"+{m['ci_upper'] - m['rating']:.1f}/-{m['rating'] - m['ci_lower']:.1f}"
            rank = m["rank"] if m["rank"] is not None else "-"
            self.stdout.write(
                f"{rank:>4}  {m['model']:<{width}}  {m['rating']:7.1f}  {ci:>15}  "
                f"{m['votes']:>8}  {m['elo_online']:7.1f}"
            )
        for c in result.get("coefficients", []):
            self.stdout.write(c["says"])


def _dumps(result: dict) -> str:
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, np.generic):
            return x.item()
        return x

    rows = [{k: clean(v) for k, v in row.items()} for row in result["models"]]
    return json.dumps({**result, "models": rows})
