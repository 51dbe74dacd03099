"""The admin's pages for judged runs: prompt sets (imported from a file), runs (started, watched,
resumed, cancelled). Registered by arena.admin."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from arena import services
from arena.errors import ArenaError
from arena.models import ChatModel, JudgeRun, Prompt, PromptSet, judge_label
from arena.prompt_files import PromptFileError, PromptRecord, prompts_parse
from arena.selectors import judge_run_progress
from arena.verdicts import DEFAULT_JUDGE_PROMPT, judge_prompt_problems

MAX_PROMPT_FILE_BYTES = 50 * 1024 * 1024


class PromptSetImportForm(forms.ModelForm):
    file = forms.FileField(help_text='JSON lines: {"turns": [...]} or {"prompt": "..."}, optional "category", '
                           '"question_id", "reference". All or nothing.')

    class Meta:
        model = PromptSet
        fields = ("name",)

    def clean_file(self) -> list[PromptRecord]:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_PROMPT_FILE_BYTES:
            raise forms.ValidationError("The file is larger than 50 MB.")
        try:
            records = list(prompts_parse(upload.read().splitlines()))
        except PromptFileError as exc:
            raise forms.ValidationError(f"{exc}; nothing was imported.") from None
        if not records:
            raise forms.ValidationError("The file holds no prompts.")
        return records


class PromptInline(admin.TabularInline):
    model = Prompt
    extra = 0
    can_delete = False
    fields = ("index", "turns", "category", "question_id", "reference")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = ("name", "size", "created_at")
    search_fields = ("name",)
    inlines = [PromptInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(prompt_count=Count("prompts"))

    @admin.display(description="Prompts", ordering="prompt_count")
    def size(self, obj: PromptSet) -> int:
        return obj.prompt_count  # type: ignore[attr-defined]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PromptSetImportForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ("name", "created_at") if obj is not None else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj: PromptSet, form, change: bool) -> None:
        if change:
            return
        try:
            created = services.prompt_set_import(name=obj.name, records=form.cleaned_data["file"])
        except ArenaError as exc:  # e.g. the name was taken since the form was checked
            self.message_user(request, str(exc), messages.ERROR)
            raise
        obj.pk, obj.created_at = created.pk, created.created_at


class JudgeRunForm(forms.ModelForm):
    contestants = forms.ModelMultipleChoiceField(
        ChatModel.objects.exclude(endpoint_url=""), required=False, label="Models",
        help_text="None chosen: every enabled model.", widget=forms.SelectMultiple(attrs={"size": 8}),
    )

    class Meta:
        model = JudgeRun
        fields = ("prompt_set", "judge", "contestants", "pairs", "judge_prompt", "concurrency", "max_generations")
        help_texts = {
            "judge": "Any registered model with a server. Each pair is judged in both orders.",
            "judge_prompt": "{question}, {answer_a} and {answer_b} are filled in ({reference} and {reference_note} "
            "when a prompt has a reference answer); the verdict must read [[A]], [[B]] or [[C]] (a tie).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "judge" not in self.fields:  # viewing a run: every field is read-only
            return
        self.fields["judge_prompt"].initial = DEFAULT_JUDGE_PROMPT
        judge = cast(forms.ModelChoiceField, self.fields["judge"])
        judge.queryset = ChatModel.objects.exclude(endpoint_url="")

    def clean_judge_prompt(self) -> str:
        prompt = self.cleaned_data["judge_prompt"]
        if problems := judge_prompt_problems(prompt):
            raise forms.ValidationError(problems)
        return prompt

    def clean(self):
        cleaned = super().clean() or {}
        chosen = cleaned.get("contestants")
        count = len(chosen) if chosen else ChatModel.objects.filter(enabled=True).exclude(endpoint_url="").count()
        if count < 2:
            raise forms.ValidationError("A judged run needs at least two models with a server.")
        return cleaned


@admin.register(JudgeRun)
class JudgeRunAdmin(admin.ModelAdmin):
    form = JudgeRunForm
    list_display = ("id", "prompt_set", "judge", "status", "progress", "leaderboard_link", "created_at")
    list_filter = ("status",)
    actions = ["resume", "cancel"]
    readonly_fields = (
        "prompt_set", "judge", "contestants_list", "pairs", "judge_prompt", "concurrency", "max_generations",
        "status", "progress", "generations", "leaderboard_link", "created_at", "finished_at",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else JudgeRunForm.Meta.fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a run is what it was started as; resume or cancel it from the list

    @admin.display(description="Models")
    def contestants_list(self, obj: JudgeRun) -> str:
        return ", ".join(m.name for m in obj.contestants.all())

    @admin.display(description="Progress")
    def progress(self, obj: JudgeRun) -> str:
        return judge_run_progress(obj.id).summary()

    @admin.display(description="Leaderboard")
    def leaderboard_link(self, obj: JudgeRun):
        label = judge_label(obj.judge.name)
        return format_html('<a href="{}?judge={}">{}</a>', reverse("leaderboard"), label, label)

    def save_model(self, request, obj: JudgeRun, form, change: bool) -> None:
        data = form.cleaned_data
        chosen = data.get("contestants")
        run = services.judge_run_create(
            prompt_set_id=data["prompt_set"].id, judge_id=data["judge"].id,
            model_ids=[m.id for m in chosen] if chosen else None, pairs=data["pairs"],
            judge_prompt=data["judge_prompt"], concurrency=data["concurrency"],
            max_generations=data.get("max_generations"),
        )
        obj.pk, obj.created_at = run.pk, run.created_at
        self.message_user(request, f"Run {run.pk} started: {judge_run_progress(run.pk).summary()}", messages.INFO)

    def save_related(self, request, form, formsets, change: bool) -> None:
        pass  # the run's models were set when it was planned

    @admin.action(description="Resume the selected runs (hand out what is left, take back dead workers' items)")
    def resume(self, request, queryset) -> None:
        for run_id in queryset.values_list("id", flat=True):
            services.judge_run_resume(run_id=run_id)
        self.message_user(request, "Resumed.", messages.SUCCESS)

    @admin.action(description="Cancel the selected runs (items in progress finish; nothing new starts)")
    def cancel(self, request, queryset) -> None:
        cancelled = sum(services.judge_run_cancel(run_id=run_id) for run_id in queryset.values_list("id", flat=True))
        self.message_user(request, f"{cancelled} run(s) cancelled.", messages.SUCCESS)
