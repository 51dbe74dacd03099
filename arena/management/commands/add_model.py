import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from arena import services
from arena.models import ChatModel
from inference.chat_templates import PRESETS
from inference.protocols import Protocol


def _param(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--param wants key=value, got {text!r}")
    try:
        value = json.loads(raw)  # numbers, booleans, lists ("stop=[\"###\"]")
    except json.JSONDecodeError:
        value = raw
    return key, value


def _header(text: str) -> tuple[str, str]:
    name, sep, reference = text.partition("=")
    if not sep or not name:
        raise CommandError(f"--header wants NAME=env:VARIABLE or NAME=file:/path, got {text.split('=')[0]!r}=...")
    return name, reference


class Command(BaseCommand):
    help = (
        "Add a model (or update the one with this name): name, server and how to speak to it "
        "(TGI with a chat template, or an OpenAI-compatible server)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "url", help="TGI: the server's base URL, e.g. http://tgi-zephyr:80; OpenAI: the client base URL, "
            "e.g. http://gpu-host:8000/v1",
        )
        parser.add_argument("--protocol", choices=[p.value for p in Protocol], default=Protocol.TGI.value)
        parser.add_argument("--template", choices=sorted(PRESETS), help="Chat template (required for --protocol tgi)")
        parser.add_argument("--served-model", default="", metavar="MODEL",
                            help="OpenAI protocol: the model name to request (default: NAME)")
        parser.add_argument("--api-key-env", default="", metavar="VAR",
                            help="Environment variable holding the API key (the key itself is never stored)")
        parser.add_argument("--api-key-file", default="", metavar="PATH", help="Or: a secret file holding the API key")
        parser.add_argument("--header", action="append", default=[], metavar="NAME=REF",
                            help="Extra request header by reference (repeatable): NAME=env:VAR or NAME=file:/path")
        parser.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                            help="Requests in flight at once across all workers (default: the server's own limit)")
        parser.add_argument("--weight", type=float, default=1.0)
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                            help="Generation parameter override (repeatable), e.g. temperature=0.5")
        parser.add_argument("--system", default="", help="System prompt")
        parser.add_argument("--timeout", type=int, default=180, help="Total seconds for one generation")
        parser.add_argument("--disabled", action="store_true")
        parser.add_argument("--keep-existing", action="store_true",
                            help="Leave a model that already has this name untouched")

    def handle(self, *args, name, url, protocol, template, weight, param, system, timeout, disabled, keep_existing,
               **options):
        if weight < 0:
            raise CommandError("--weight must be >= 0")
        if protocol == Protocol.TGI and not template:
            raise CommandError("--template is required with --protocol tgi (the server applies no chat template)")
        if options["max_concurrent"] is not None and options["max_concurrent"] < 1:
            raise CommandError("--max-concurrent must be at least 1")
        parameters = dict(_param(p) for p in param)
        model = ChatModel.objects.filter(name=name).first() or ChatModel(name=name)
        created = model.pk is None
        if keep_existing and not created:
            self.stdout.write(f"Kept {model.name} as it is")
            return
        before = {f: getattr(model, f) for f in ChatModel.SERVER_FIELDS}
        for field, value in {
            "protocol": protocol, "endpoint_url": url, "template": template or "", "weight": weight,
            "parameters": parameters, "system_prompt": system, "timeout_seconds": timeout, "enabled": not disabled,
            "served_model": options["served_model"], "api_key_env": options["api_key_env"],
            "api_key_file": options["api_key_file"], "extra_headers": dict(_header(h) for h in options["header"]),
            "max_concurrent": options["max_concurrent"],
        }.items():
            setattr(model, field, value)
        server_changed = bool(url) and (created or any(getattr(model, f) != v for f, v in before.items()))
        try:
            model.full_clean()  # the parameters are checked as in the admin (ChatModel.clean)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        with transaction.atomic():
            model.save()
            if server_changed:
                services.model_server_changed(model_id=model.id)
        how = template if protocol == Protocol.TGI else f"openai, model {model.served_model_name}"
        self.stdout.write(f"{'Added' if created else 'Updated'} {model.name} → {model.endpoint_url} ({how})")
        if server_changed:
            self.stdout.write("  It joins battles once its server answers a probe (queued now).")
