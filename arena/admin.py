import asyncio

from django.contrib import admin, messages

from arena import services
from arena.models import Battle, ChatModel, Reply, Turn, Vote
from inference.backends import servers_probe


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin):
    list_display = ("name", "endpoint_url", "template", "weight", "enabled", "healthy", "health_checked_at", "last_error_short")
    list_filter = ("enabled", "healthy", "template")
    list_editable = ("weight", "enabled")
    search_fields = ("name", "endpoint_url")
    readonly_fields = ("healthy", "health_checked_at", "last_error", "server_info", "created_at")
    actions = ["probe"]

    @admin.display(description="Last error")
    def last_error_short(self, obj: ChatModel) -> str:
        return obj.last_error[:80]

    @admin.action(description="Probe the selected models (/health and /info)")
    def probe(self, request, queryset) -> None:
        models = list(queryset)
        results = asyncio.run(servers_probe([m.endpoint_url for m in models]))
        for model, result in zip(models, results, strict=True):
            services.model_health_record(
                model_id=model.id, healthy=result["healthy"], error=result["error"], info=result["info"]
            )
            info = result["info"]
            if result["healthy"]:
                self.message_user(
                    request,
                    f"{model.name}: healthy — model {info.get('model_id', '?')}, "
                    f"max input tokens {info.get('max_input_tokens', '?')}, "
                    f"max total tokens {info.get('max_total_tokens', '?')}, "
                    f"max concurrent requests {info.get('max_concurrent_requests', '?')}, "
                    f"TGI {info.get('version', '?')}",
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, f"{model.name}: unhealthy — {result['error']}", messages.ERROR)



class ReplyInline(admin.TabularInline):
    model = Reply
    extra = 0
    can_delete = False
    fields = ("side", "attempt", "model", "status", "failure_reason", "token_count", "ttft_ms", "duration_ms", "names_identity")
    readonly_fields = fields


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = ("battle", "index", "attempt", "created_at")
    inlines = [ReplyInline]
    readonly_fields = ("battle", "index", "prompt", "attempt", "created_at")


@admin.register(Battle)
class BattleAdmin(admin.ModelAdmin):
    list_display = ("id", "model_a", "model_b", "created_at")
    list_filter = ("model_a", "model_b")
    readonly_fields = ("id", "model_a", "model_b", "client_id", "ip_hash", "anonymous", "created_at")


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ("battle", "outcome", "identity_flagged", "counted", "created_at")
    list_filter = ("outcome", "identity_flagged", "counted")
    readonly_fields = ("battle", "outcome", "client_id", "identity_flagged", "counted", "created_at")
