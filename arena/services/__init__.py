"""Writes. Every change to battles, turns, replies, votes and the model registry goes through a
function here, one module per entity; `from arena import services` gives them all.

Functions are keyword-only and named `<entity>_<action>`. Work for Celery is queued with
`transaction.on_commit` (through `arena.queue`), so a task never sees a row that might still
roll back.
"""

from arena.services.accounts import account_create_from_invitation, invitation_usable
from arena.services.battles import battle_start, battles_delete, turn_regenerate, turn_submit
from arena.services.counting import (
    leaderboard_rebuild,
    leaderboard_rebuild_schedule,
    leaderboard_refresh_schedule,
    votes_count_pending,
)
from arena.services.judge_runs import (
    judge_run_cancel,
    judge_run_create,
    judge_run_pump,
    judge_run_resume,
    judge_runs_sweep,
    prompt_set_import,
)
from arena.services.judge_work import judge_answer_finish, judge_answer_start, judge_game_finish, judge_game_start
from arena.services.registry import (
    HealthVerdict,
    model_failure_record,
    model_health_record,
    model_misconfigured,
    model_server_changed,
    models_probe_due,
    models_probe_now,
)
from arena.services.replies import GenerationJob, replies_sweep, reply_claim, reply_finish, reply_requeue
from arena.services.screening import votes_screen
from arena.services.traits import battle_traits_store
from arena.services.votes import vote_cast, votes_delete, votes_review

__all__ = [
    "account_create_from_invitation",
    "battle_traits_store",
    "invitation_usable",
    "votes_review",
    "votes_screen",
    "GenerationJob",
    "HealthVerdict",
    "battle_start",
    "battles_delete",
    "judge_answer_finish",
    "judge_answer_start",
    "judge_game_finish",
    "judge_game_start",
    "judge_run_cancel",
    "judge_run_create",
    "judge_run_pump",
    "judge_run_resume",
    "judge_runs_sweep",
    "leaderboard_rebuild",
    "leaderboard_rebuild_schedule",
    "leaderboard_refresh_schedule",
    "model_failure_record",
    "model_misconfigured",
    "model_health_record",
    "model_server_changed",
    "models_probe_due",
    "models_probe_now",
    "prompt_set_import",
    "replies_sweep",
    "reply_claim",
    "reply_finish",
    "reply_requeue",
    "turn_regenerate",
    "turn_submit",
    "vote_cast",
    "votes_count_pending",
    "votes_delete",
]
