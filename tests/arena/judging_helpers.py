"""Helpers of the judged-run tests: development-server contestants and judges, prompt sets, waiting."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from arena import services
from arena.models import ChatModel, JudgeGame, JudgeRun, PromptSet
from arena.prompt_files import PromptRecord
from devserver import DevServerConfig, serve_in_thread
from devserver.judging import verdict_for
from tests.helpers import wait_until

VERDICTS = {"A": "a", "B": "b", "C": "tie"}
PROMPTS = [
    "How do I keep basil alive on a windowsill?",
    "Explain recursion to a ten-year-old.",
    "What should I pack for a week of hiking in Scotland?",
    "Write a haiku about database indexes.",
    "Why is the sky blue?",
]


@contextlib.contextmanager
def judged_models(tokens_per_second: float = 400, contestants: int = 3) -> Iterator[tuple[list[ChatModel], ChatModel]]:
    """Contestants on dev servers of their own (TGI's protocol and OpenAI's), and a judge on
    another (OpenAI's protocol)."""
    names = ["judged-zephyr", "judged-mistral", "judged-hermes"][:contestants]
    configs = [DevServerConfig(model_id=n, time_to_first_token=0.02, tokens_per_second=tokens_per_second)
               for n in [*names, "judge-model"]]
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(serve_in_thread(c)) for c in configs]
        models = []
        for i, (name, url) in enumerate(zip(names, urls, strict=False)):
            if i == 1:
                models.append(ChatModel.objects.create(name=name, endpoint_url=f"{url}/v1", protocol="openai",
                                                       template="", timeout_seconds=20))
            else:
                models.append(ChatModel.objects.create(name=name, endpoint_url=url, template="zephyr",
                                                       timeout_seconds=20))
        judge = ChatModel.objects.create(
            name="judge-model", endpoint_url=f"{urls[-1]}/v1", protocol="openai", template="", timeout_seconds=20,
            enabled=False,  # a judge need not be drawn into battles
        )
        yield models, judge


def prompt_set(name: str = "basics", prompts: list[str] = PROMPTS) -> PromptSet:
    records = [PromptRecord(i + 1, [p], "general", f"q{i}", []) for i, p in enumerate(prompts)]
    return services.prompt_set_import(name=name, records=records)


def run_finished(run_id: int, timeout: float = 60, sweep: bool = False) -> JudgeRun:
    def finished():
        if sweep:
            services.judge_runs_sweep()
        run = JudgeRun.objects.get(id=run_id)
        return run if run.status != JudgeRun.Status.RUNNING else None

    return wait_until(finished, timeout, f"judged run {run_id} to finish", interval=0.25)


def expected_verdict(game: JudgeGame) -> str:
    """What the development judge says of the game's answers, worked out here."""
    texts = {a.model_id: a.texts for a in game.run.answers.filter(prompt=game.prompt)}
    return VERDICTS[verdict_for(texts[game.model_a_id][0], texts[game.model_b_id][0])]
