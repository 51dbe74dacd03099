from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten
from django.urls import reverse

from arena import services
from arena.admin_judging import JudgeRunAdmin, PromptSetAdmin
from arena.models import Battle, ChatModel, FlaggedVote, Invitation, Reply, Turn, Vote
from arena.services.screening import LOYAL, TOO_FAST
from inference.protocols import Protocol

# Messages name models inside quotes, never first: the admin shows every message with its first
# letter capitalised, and model names are case-sensitive identifiers ("mistral-7b-instruct").

# The judged runs' pages live in their own module; importing it here registers them.
__all__ = ["JudgeRunAdmin", "PromptSetAdmin"]


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin):
    # Health first: on a laptop-width screen the long URL column would push it out of view.
    list_display = (
        "name", "healthy", "last_error_short", "enabled", "weight", "protocol", "template", "endpoint_url",
        "health_checked_at",
    )
    list_filter = ("enabled", "healthy", "protocol", "template")
    list_editable = ("weight", "enabled")
    search_fields = ("name", "endpoint_url")
    # Health comes from the probes, the online Elo from counting votes.
    readonly_fields = ("healthy", "health_checked_at", "last_error", "server_info", "elo_online", "created_at")
    actions = ["probe"]
    fieldsets = (
        (None, {"fields": ("name", "enabled", "weight")}),
        ("Server", {"fields": ("protocol", "endpoint_url", "served_model", "max_concurrent", "timeout_seconds")}),
        ("Credentials, by reference only", {
            "fields": ("api_key_env", "api_key_file", "extra_headers"),
            "description": "Name where the secret lives (an environment variable of the web and worker "
            "processes, or a secret file); the arena reads it when it calls the server and never stores it.",
        }),
        ("Generation", {"fields": ("template", "system_prompt", "parameters")}),
        ("Health", {
            "fields": ("healthy", "health_checked_at", "last_error", "server_info", "elo_online", "created_at"),
        }),
    )

    @admin.display(description="Last error")
    def last_error_short(self, obj: ChatModel) -> str:
        return obj.last_error[:80]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        # Adding: the read-only fields would only show defaults (e.g. healthy before any probe).
        return fieldsets if obj is not None else fieldsets[:-1]

    def save_model(self, request, obj: ChatModel, form, change: bool) -> None:
        # Compared with the stored row: the form reports JSON fields as changed when they are not.
        stored = ChatModel.objects.filter(pk=obj.pk).values(*ChatModel.SERVER_FIELDS).first() if change else None
        server_changed = stored is None or any(stored[f] != getattr(obj, f) for f in ChatModel.SERVER_FIELDS)
        super().save_model(request, obj, form, change)
        if server_changed and obj.endpoint_url:
            services.model_server_changed(model_id=obj.id)
            self.message_user(
                request,
                f"“{obj.name}” joins battles once its server ({obj.endpoint_url}) answers; it is being probed now.",
                messages.INFO,
            )

    @admin.action(description="Probe the selected models (TGI's /health and /info, or /v1/models)")
    def probe(self, request, queryset) -> None:
        # Reported as stored, not as the server answered: /health may be fine while recent
        # failures or parameters that don't fit the server keep the model out.
        for model, result, verdict in services.models_probe_now(list(queryset)):
            if verdict.healthy:
                self.message_user(request, f"“{model.name}” is healthy — {_server_said(model, result['info'])}",
                                  messages.SUCCESS)
            else:
                self.message_user(request, f"“{model.name}” is unhealthy — {verdict.error}", messages.ERROR)


def _server_said(model: ChatModel, info: dict) -> str:
    """What the probed server says of itself: TGI's /info, or the model's /v1/models entry."""
    if model.protocol == Protocol.OPENAI:
        context = info.get("max_model_len")
        return (f"serves {info.get('id', model.served_model_name)} over the OpenAI protocol"
                + (f", context length {context}" if context is not None else ""))
    return (
        f"model {info.get('model_id', '?')}, "
        f"max input tokens {info.get('max_input_tokens', '?')}, "
        f"max total tokens {info.get('max_total_tokens', '?')}, "
        f"max concurrent requests {info.get('max_concurrent_requests', '?')}, "
        f"TGI {info.get('version', '?')}"
    )


class WrittenByTheArena:
    """Battles, turns, replies and votes are written by the arena only: the admin shows them (and
    may delete battles and votes), but never adds or edits one."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ArenaRecordAdmin(WrittenByTheArena, admin.ModelAdmin):
    pass


class ReplyInline(WrittenByTheArena, admin.StackedInline):
    model = Reply
    extra = 0
    can_delete = False
    fields = (
        ("side", "attempt", "model", "status"),
        ("prompt_tokens", "token_count", "ttft_ms", "duration_ms", "finish_reason", "names_identity"),
        "failure_reason",
        "text",
    )
    readonly_fields = flatten(fields)


@admin.register(Turn)
class TurnAdmin(ArenaRecordAdmin):
    list_display = ("battle", "index", "attempt", "created_at")
    inlines = [ReplyInline]
    readonly_fields = ("battle", "index", "prompt", "attempt", "created_at")


@admin.register(Battle)
class BattleAdmin(ArenaRecordAdmin):
    list_display = ("id", "model_a", "model_b", "created_at")
    list_filter = ("model_a", "model_b")
    # source_id and judge are set by import_battles (the record's question_id and judge); the draw's
    # probability by battle_start (or the import), and the counted vote's weight follows from it.
    readonly_fields = (
        "id", "model_a", "model_b", "client_id", "ip_hash", "anonymous", "source_id", "judge",
        "draw_probability", "draw_pairs", "created_at",
    )

    def delete_model(self, request, obj: Battle) -> None:
        services.battles_delete(battle_ids=[obj.id])

    def delete_queryset(self, request, queryset) -> None:
        services.battles_delete(battle_ids=list(queryset.values_list("id", flat=True)))


def flag_reasons_text(vote: Vote, names: dict[int, str]) -> str:
    """The flags in words: "a reply named a model", "cast 0.8 s after…", "loyal to <model>"."""
    words = []
    for reason in vote.flag_reasons:
        kind, _, model_id = reason.partition(":")
        if kind == "names_identity":
            words.append("a reply named a model or vendor")
        elif kind == TOO_FAST:
            words.append(f"cast within {settings.ARENA_VOTE_MIN_SECONDS:g} s of the replies finishing")
        elif kind == LOYAL:
            name = names.get(int(model_id), f"model {model_id}") if model_id.isdigit() else model_id
            words.append(f"the voter keeps picking “{name}” against the odds")
        else:
            words.append(reason)
    return "; ".join(words)


@admin.register(Vote)
class VoteAdmin(ArenaRecordAdmin):
    list_display = ("battle", "outcome", "voter", "identity_flagged", "review", "counted", "created_at")
    list_filter = ("outcome", "review", "identity_flagged", "counted")
    readonly_fields = (
        "battle", "outcome", "client_id", "user", "identity_flagged", "flag_reasons", "review", "counted", "created_at",
    )
    list_select_related = ("user",)

    @admin.display(description="Voter")
    def voter(self, obj: Vote) -> str:
        return obj.user.get_username() if obj.user else f"session {obj.client_id[:8]}"

    # Deleting votes recounts the leaderboard without them (after the deletion commits).
    def delete_model(self, request, obj: Vote) -> None:
        services.votes_delete(vote_ids=[obj.id])

    def delete_queryset(self, request, queryset) -> None:
        services.votes_delete(vote_ids=list(queryset.values_list("id", flat=True)))


@admin.register(FlaggedVote)
class FlaggedVoteAdmin(ArenaRecordAdmin):
    """Flagged votes, waiting for a decision: stay out of the ratings until included (unless
    ARENA_RATINGS_INCLUDE_FLAGGED). Deciding recounts the leaderboard."""

    list_display = ("created_at", "battle_models", "outcome", "voter", "reasons", "review", "counted")
    list_filter = ("review",)
    readonly_fields = VoteAdmin.readonly_fields
    list_select_related = ("battle__model_a", "battle__model_b", "user")
    actions = ["votes_include", "votes_exclude", "recount"]
    voter = VoteAdmin.voter

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(review=Vote.Review.NONE)

    def changelist_view(self, request, extra_context=None):
        # The list opens on what waits for review.
        if not request.GET and not request.POST:
            request.GET = request.GET.copy()
            request.GET["review__exact"] = Vote.Review.PENDING
            request.META["QUERY_STRING"] = request.GET.urlencode()
        self._names = dict(ChatModel.objects.values_list("id", "name"))
        return super().changelist_view(request, extra_context)

    @admin.display(description="Battle")
    def battle_models(self, obj: Vote) -> str:
        return f"{obj.battle.model_a.name} vs {obj.battle.model_b.name}"

    @admin.display(description="Why flagged")
    def reasons(self, obj: Vote) -> str:
        return flag_reasons_text(obj, getattr(self, "_names", {}))

    @admin.action(description="Include the selected votes in the ratings (and recount)")
    def votes_include(self, request, queryset) -> None:
        n = services.votes_review(vote_ids=list(queryset.values_list("id", flat=True)), include=True)
        self.message_user(request, f"{n} vote(s) included; the leaderboard is being recounted.", messages.SUCCESS)

    @admin.action(description="Exclude the selected votes from the ratings (and recount)")
    def votes_exclude(self, request, queryset) -> None:
        n = services.votes_review(vote_ids=list(queryset.values_list("id", flat=True)), include=False)
        self.message_user(request, f"{n} vote(s) excluded; the leaderboard is being recounted.", messages.SUCCESS)

    @admin.action(description="Recount the leaderboard now")
    def recount(self, request, queryset) -> None:
        services.leaderboard_rebuild_schedule()
        self.message_user(request, "The leaderboard is being recounted.", messages.SUCCESS)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Sign-up links (ARENA_ACCESS=accounts): give the link to the person it is for."""

    list_display = ("note", "link", "uses", "max_uses", "expires_at", "created_at")
    readonly_fields = ("link", "uses", "created_by", "created_at")
    fields = ("note", "max_uses", "expires_at", "link", "uses", "created_by", "created_at")

    @admin.display(description="Sign-up link")
    def link(self, obj: Invitation) -> str:
        if not obj.pk:
            return "Shown once saved."
        return self._request.build_absolute_uri(reverse("invitation", args=[obj.token]))

    def get_queryset(self, request):
        self._request = request
        return super().get_queryset(request)

    def get_form(self, request, obj=None, change=False, **kwargs):
        self._request = request
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request, obj: Invitation, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

