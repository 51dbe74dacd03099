"""`manage.py tgi_devserver`: run the TGI-compatible development model server."""

from django.core.management.base import BaseCommand

from inference import devserver


class Command(BaseCommand):
    help = "Run a development model server that speaks TGI's wire protocol (see inference.devserver)."

    def add_arguments(self, parser):
        devserver.add_arguments(parser)

    def handle(self, *args, **options):
        devserver.run(devserver.config_from_options(options), options["host"], options["port"])
