import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from arena import services
from arena.models import ChatModel
from inference.chat_templates import PRESETS


def _param(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--param wants key=value, got {text!r}")
    try:
        value = json.loads(raw)  # numbers, booleans, lists ("stop=[\"###\"]")
    except json.JSONDecodeError:
        value = raw
    return key, value


class Command(BaseCommand):
    help = "Add a model (or update the one with this name): name, TGI endpoint, chat template."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("url", help="Base URL of the TGI server, e.g. http://tgi-zephyr:80")
        parser.add_argument("--template", required=True, choices=sorted(PRESETS))
        parser.add_argument("--weight", type=float, default=1.0)
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                            help="Generation parameter override (repeatable), e.g. temperature=0.5")
        parser.add_argument("--system", default="", help="System prompt")
        parser.add_argument("--timeout", type=int, default=180, help="Total seconds for one generation")
        parser.add_argument("--disabled", action="store_true")
        parser.add_argument("--keep-existing", action="store_true",
                            help="Leave a model that already has this name untouched")

    def handle(self, *args, name, url, template, weight, param, system, timeout, disabled, keep_existing, **options):
        if weight < 0:
            raise CommandError("--weight must be >= 0")
        parameters = dict(_param(p) for p in param)
        model = ChatModel.objects.filter(name=name).first() or ChatModel(name=name)
        created = model.pk is None
        if keep_existing and not created:
            self.stdout.write(f"Kept {model.name} as it is")
            return
        server_changed = bool(url) and (created or model.endpoint_url != url)
        for field, value in {
            "endpoint_url": url, "template": template, "weight": weight, "parameters": parameters,
            "system_prompt": system, "timeout_seconds": timeout, "enabled": not disabled,
        }.items():
            setattr(model, field, value)
        try:
            model.full_clean()  # the parameters are checked as in the admin (ChatModel.clean)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        with transaction.atomic():
            model.save()
            if server_changed:
                services.model_server_changed(model_id=model.id)
        self.stdout.write(f"{'Added' if created else 'Updated'} {model.name} → {model.endpoint_url} ({template})")
        if server_changed:
            self.stdout.write("  It joins battles once its server answers a probe (queued now).")
