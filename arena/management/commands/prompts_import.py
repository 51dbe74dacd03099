from django.core.management.base import BaseCommand, CommandError

from arena import services
from arena.errors import ArenaError
from arena.prompt_files import PromptFileError, prompts_read


class Command(BaseCommand):
    help = "Import a prompt set for judged runs: JSON lines with \"turns\" (or \"prompt\"), optional " \
        "\"category\", \"question_id\" and \"reference\"; all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--name", required=True, help="the prompt set's name (judge_run --prompts NAME)")

    def handle(self, *args, file, name, **options):
        try:
            records = list(prompts_read(file))
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        except PromptFileError as exc:
            raise CommandError(f"{exc}; nothing was imported") from None
        try:
            prompt_set = services.prompt_set_import(name=name, records=records)
        except ArenaError as exc:
            raise CommandError(f"{exc} Nothing was imported.") from None
        turns = sum(len(r.turns) for r in records)
        self.stdout.write(f"Imported prompt set “{prompt_set.name}”: {len(records)} prompts, {turns} turns.")
