import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from arena import services
from arena.errors import ArenaError
from arena.models import ChatModel, JudgeRun, PromptSet
from arena.selectors import judge_run_progress
from arena.verdicts import DEFAULT_JUDGE_PROMPT


class Command(BaseCommand):
    help = (
        "Run a prompt set through model pairs and let a judge model vote on each pair in both orders; "
        "waits with a progress bar until the run is done (--no-wait: queue it and return)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--prompts", required=True, metavar="SET", help="a prompt set's name (prompts_import)")
        parser.add_argument("--judge", required=True, metavar="MODEL", help="the judge: any registered model")
        parser.add_argument("--models", metavar="M1,M2,...", help="the contestants (default: every enabled model)")
        parser.add_argument("--concurrency", type=int, default=8, metavar="N", help="generations at once (default 8)")
        parser.add_argument("--pairs", choices=JudgeRun.Pairs.values, default=JudgeRun.Pairs.ALL,
                            help="all: every pair on every prompt; adaptive: one pair a prompt, adaptively")
        parser.add_argument("--max-generations", type=int, metavar="N", help="plan at most N answers and verdicts")
        parser.add_argument("--judge-prompt-file", metavar="FILE",
                            help="the judge's prompt, with {question}, {answer_a}, {answer_b} (default: MT-Bench's)")
        parser.add_argument("--no-wait", action="store_true", help="queue the run and return")
        parser.add_argument("--resume", type=int, metavar="RUN", help="take run RUN up again instead of starting one")

    def handle(self, *args, **options):
        if options["resume"] is not None:
            run_id = options["resume"]
            if not JudgeRun.objects.filter(id=run_id).exists():
                raise CommandError(f"No judged run {run_id}.")
            services.judge_run_resume(run_id=run_id)
        else:
            run_id = self._start(options)
        self.stdout.write(f"Judged run {run_id} queued.")
        if options["no_wait"]:
            return
        self._wait(run_id)

    def _start(self, options) -> int:
        prompt_set = PromptSet.objects.filter(name=options["prompts"]).first()
        if prompt_set is None:
            raise CommandError(f"No prompt set named “{options['prompts']}” (import one with prompts_import).")
        judge = ChatModel.objects.filter(name=options["judge"]).first()
        if judge is None:
            raise CommandError(f"No model named “{options['judge']}”.")
        model_ids = None
        if options["models"]:
            names = [n.strip() for n in options["models"].split(",") if n.strip()]
            found = dict(ChatModel.objects.filter(name__in=names).values_list("name", "id"))
            if missing := [n for n in names if n not in found]:
                raise CommandError(f"No model named {', '.join(f'“{n}”' for n in missing)}.")
            model_ids = [found[n] for n in names]
        judge_prompt = DEFAULT_JUDGE_PROMPT
        if options["judge_prompt_file"]:
            try:
                with open(options["judge_prompt_file"], encoding="utf-8") as fh:
                    judge_prompt = fh.read()
            except OSError as exc:
                raise CommandError(f"Can't read the judge prompt: {exc}") from None
        try:
            run = services.judge_run_create(
                prompt_set_id=prompt_set.id, judge_id=judge.id, model_ids=model_ids, pairs=options["pairs"],
                judge_prompt=judge_prompt, concurrency=options["concurrency"],
                max_generations=options["max_generations"],
            )
        except ArenaError as exc:
            raise CommandError(str(exc)) from None
        return run.id

    def _wait(self, run_id: int) -> None:
        started = time.monotonic()
        progress = judge_run_progress(run_id)
        with tqdm(total=progress.total, desc=f"run {run_id}", unit=" items") as bar:
            while True:
                progress = judge_run_progress(run_id)
                bar.update(progress.finished - bar.n)
                bar.set_postfix_str(f"{progress.games.get('done', 0)} verdicts, {progress.generations} generations")
                if progress.status != JudgeRun.Status.RUNNING:
                    break
                time.sleep(0.5)
        self.stdout.write(
            f"Judged run {run_id} {progress.status} in {time.monotonic() - started:.1f} s: {progress.summary()}"
        )
