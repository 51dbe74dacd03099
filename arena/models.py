"""The arena's data: the model registry, battles, turns, replies and votes.

The database is the source of truth. Redis only carries what may be lost (live deltas, broker
messages, caches); a reply's text is written here once, when its generation ends.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from arena import ratings
from arena.credentials import env_name_problem, headers_problems
from arena.verdicts import JUDGE_MODEL_PREFIX
from inference.chat_templates import TEMPLATE_CHOICES
from inference.failures import FailureKind
from inference.protocols import Protocol, concurrency_from_info, model_parameters_problems


def judge_label(model_name: str) -> str:
    return f"{JUDGE_MODEL_PREFIX}{model_name}"


def endpoint_url_validate(value: str) -> None:
    """http(s)://host[:port][/path]; unlike URLValidator, single-label hosts (compose services) are fine."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError("Enter a valid URL, e.g. http://tgi-zephyr:80") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or " " in value:
        raise ValidationError("Enter a valid URL, e.g. http://tgi-zephyr:80")


class ChatModel(models.Model):
    """A model that can be drawn into battles, served by one TGI or OpenAI-compatible endpoint."""

    name = models.CharField(max_length=100, unique=True, help_text="Shown only after a vote.")
    protocol = models.CharField(
        max_length=16, choices=[(p.value, p.label) for p in Protocol], default=Protocol.TGI.value,
        help_text="How the server is spoken to: TGI's native stream, or OpenAI's chat completions "
        "(vLLM, SGLang, TGI's Messages API, Ollama, hosted APIs).",
    )
    endpoint_url = models.CharField(
        max_length=500,
        blank=True,
        validators=[endpoint_url_validate],
        help_text="TGI: the server's base URL, e.g. http://tgi-zephyr:80. OpenAI: what a client takes as its "
        "base URL, e.g. http://vllm:8000/v1 (empty: rated only, e.g. imported).",
    )
    served_model = models.CharField(
        max_length=200, blank=True,
        help_text="OpenAI protocol: the model name to request (vLLM's --served-model-name). Empty: this model's name.",
    )
    # By reference only: the value is read from the worker's environment or a secret file when a
    # request is made, and never stored, shown or logged (arena.credentials).
    api_key_env = models.CharField(
        max_length=100, blank=True, verbose_name="API key variable",
        help_text="Name of the environment variable holding the API key (e.g. OPENAI_API_KEY), never the key.",
    )
    api_key_file = models.CharField(
        max_length=500, blank=True, verbose_name="API key file",
        help_text="Or: absolute path of a secret file holding the API key (e.g. /run/secrets/openai_api_key).",
    )
    extra_headers = models.JSONField(
        default=dict, blank=True,
        help_text='Extra request headers, each by reference: {"OpenAI-Organization": "env:OPENAI_ORG"} '
        'or "file:/run/secrets/..."; never a value.',
    )
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Requests in flight at once, across all workers; more wait their turn. "
        "Empty: what TGI's /info reports (no limit for OpenAI-compatible servers).",
    )
    template = models.CharField(
        max_length=32, choices=TEMPLATE_CHOICES, default="zephyr", blank=True,
        help_text="TGI protocol only: the server applies its own chat template on the OpenAI protocol.",
    )
    system_prompt = models.TextField(blank=True, help_text="Ignored by templates with no system role.")
    parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Generation parameters (temperature, top_p, top_k, max_new_tokens, "
        "repetition_penalty, stop...). Empty: the template's defaults.",
    )
    weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    enabled = models.BooleanField(default=True)
    timeout_seconds = models.PositiveIntegerField(
        default=180, help_text="Total time allowed for one generation."
    )
    # Health, maintained by the probes and by generation outcomes. A model an operator adds (admin,
    # add_model, models_sync), or points at another server, starts unhealthy: it is not drawn into
    # battles before that server has answered a probe, which is queued as it is saved
    # (services.model_server_changed). A working server brings it in within seconds; a dead or
    # mistyped one shows its error in the admin instead of failing users' battles. The column's
    # default stays true for rows made directly (test fixtures, scripts).
    healthy = models.BooleanField(default=True, help_text="Drawn into battles only while healthy; set by the probes.")
    health_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    server_info = models.JSONField(default=dict, blank=True, help_text="Last /info answer.")
    # Online Elo, updated in vote order as votes are counted (the reference's K=4, start 1000).
    elo_online = models.FloatField(default=1000.0)
    created_at = models.DateTimeField(auto_now_add=True)

    # What says which server answers and how: a change to any of them is a new server to probe
    # before the model is drawn again (services.model_server_changed).
    SERVER_FIELDS = ("protocol", "endpoint_url", "served_model", "api_key_env", "api_key_file", "extra_headers")

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(weight__gte=0), name="chatmodel_weight_gte_0")]

    def __str__(self) -> str:
        return self.name

    @property
    def served_model_name(self) -> str:
        return self.served_model or self.name

    @property
    def concurrency_limit(self) -> int | None:
        """Requests in flight at once across all workers: the admin's, else the server's own."""
        return self.max_concurrent or concurrency_from_info(self.protocol, self.server_info or {})

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.enabled and not self.endpoint_url:
            errors["endpoint_url"] = ["An enabled model needs an endpoint URL."]
        if self.protocol == Protocol.TGI and not self.template:
            errors["template"] = ["A model served over TGI's protocol needs a chat template."]
        if self.api_key_env and self.api_key_file:
            errors["api_key_file"] = ["Give the API key by an environment variable or by a file, not both."]
        if self.api_key_env and (problem := env_name_problem(self.api_key_env)):
            errors["api_key_env"] = [problem]
        if self.api_key_file and not self.api_key_file.startswith("/"):
            errors["api_key_file"] = ["The secret file's path must be absolute."]
        if self.extra_headers is None:  # the admin's empty field
            self.extra_headers = {}
        if problems := headers_problems(self.extra_headers):
            errors["extra_headers"] = problems
        problems = model_parameters_problems(
            self.protocol, self.parameters, template=self.template, server_info=self.server_info
        )
        if problems:
            errors["parameters"] = problems
        if errors:
            raise ValidationError(errors)


class Battle(models.Model):
    """Two anonymous models answering the same conversation until one vote ends it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model_a = models.ForeignKey(ChatModel, on_delete=models.PROTECT, related_name="+")
    model_b = models.ForeignKey(ChatModel, on_delete=models.PROTECT, related_name="+")
    # Salted hashes only: never the raw session key or IP.
    client_id = models.CharField(max_length=64, db_index=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    anonymous = models.BooleanField(default=True)
    # For imported battles: the record's question_id (or a digest), making re-imports idempotent.
    source_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    judge = models.CharField(max_length=200, blank=True)
    # How the pair was drawn (arena.sampling): its probability among `draw_pairs` possible pairs.
    # A vote can then weigh 1 / (draw_pairs * draw_probability) in the fit; empty when unknown
    # (imported without them, or drawn before they were recorded): the vote weighs 1.
    draw_probability = models.FloatField(null=True, blank=True)
    draw_pairs = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(model_a=models.F("model_b")), name="battle_distinct_models"),
            models.CheckConstraint(
                condition=Q(draw_probability__isnull=True) | Q(draw_probability__gt=0, draw_probability__lte=1),
                name="battle_draw_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)


class Turn(models.Model):
    """One user message of a battle; each side answers it (again on regenerate)."""

    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    prompt = models.TextField()
    attempt = models.PositiveIntegerField(default=0, help_text="Bumped by each regenerate.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["battle", "index"], name="turn_unique_index")]

    def __str__(self) -> str:
        return f"{self.battle_id} turn {self.index}"


class Reply(models.Model):
    """One side's answer to one turn; regenerating adds a new attempt and keeps the old rows."""

    class Side(models.TextChoices):
        A = "a"
        B = "b"

    class Status(models.TextChoices):
        QUEUED = "queued"
        STREAMING = "streaming"
        DONE = "done"
        FAILED = "failed"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="replies")
    side = models.CharField(max_length=1, choices=Side.choices)
    attempt = models.PositiveIntegerField(default=0)
    model = models.ForeignKey(ChatModel, on_delete=models.PROTECT, related_name="replies")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(blank=True)
    # Why it failed ("" when done): decides whether a retry can help (arena.rules).
    failure_kind = models.CharField(
        max_length=32, blank=True, default="",
        choices=[(kind.value, kind.name.replace("_", " ").lower()) for kind in FailureKind],
    )
    # Given by each claim: names the reply's live text and heartbeat in Redis (arena.live).
    stream_id = models.UUIDField(null=True, blank=True, editable=False)
    text = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    token_count = models.PositiveIntegerField(default=0, help_text="Completion tokens.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="As the server reported it.")
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    names_identity = models.BooleanField(default=False, help_text="The text names a model or vendor.")
    # Its markdown as style control counts it (arena.style), stored as it finishes; empty before.
    header_count = models.PositiveIntegerField(null=True, blank=True)
    list_count = models.PositiveIntegerField(null=True, blank=True)
    bold_count = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "replies"
        ordering = ["turn__index", "attempt", "side"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "side", "attempt"], name="reply_unique_side_attempt")
        ]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            # A model's most recent replies, for its speed columns on the leaderboard.
            models.Index(fields=["model", "-finished_at"], name="reply_model_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.turn_id} {self.side} attempt {self.attempt}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class BattleTraits(models.Model):
    """What the style-controlled and per-category leaderboards read of a battle, computed once
    (arena.style, arena.categories): each side's style over the turns voted on, and the
    conversation's categories."""

    battle = models.OneToOneField(Battle, on_delete=models.CASCADE, primary_key=True, related_name="traits")
    tokens_a = models.PositiveIntegerField()
    headers_a = models.PositiveIntegerField()
    lists_a = models.PositiveIntegerField()
    bold_a = models.PositiveIntegerField()
    tokens_b = models.PositiveIntegerField()
    headers_b = models.PositiveIntegerField()
    lists_b = models.PositiveIntegerField()
    bold_b = models.PositiveIntegerField()
    turns = models.PositiveIntegerField()
    query_tokens = models.PositiveIntegerField(help_text="The user's messages, in tokens.")
    coding = models.BooleanField()
    language = models.CharField(max_length=32, help_text="Of the first prompt, e.g. english; unknown if unclear.")
    refusal = models.BooleanField(help_text="A reply declines to answer.")
    prompt_digest = models.CharField(max_length=64, help_text="SHA-256 of the prompts, for deduplication.")

    class Meta:
        verbose_name_plural = "battle traits"

    def __str__(self) -> str:
        return f"{self.battle_id}: {self.language}, {self.turns} turn(s)"

    STYLE_FIELDS = ("tokens_a", "headers_a", "lists_a", "bold_a", "tokens_b", "headers_b", "lists_b", "bold_b")
    TRAIT_FIELDS = ("turns", "query_tokens", "coding", "language", "refusal", "prompt_digest")


class VoteQuerySet(models.QuerySet["Vote"]):
    def countable(self) -> VoteQuerySet:
        """Votes that count towards the ratings: on anonymous battles, not a judge model's unless
        ARENA_RATINGS_INCLUDE_JUDGED says so, not excluded by an admin, not flagged and waiting for
        review unless ARENA_RATINGS_INCLUDE_FLAGGED says so, and not held while their account is new
        (ARENA_NEW_ACCOUNT_HOLD_VOTES)."""
        votes = self.filter(battle__anonymous=True).exclude(review=Vote.Review.EXCLUDED)
        if not settings.ARENA_RATINGS_INCLUDE_JUDGED:  # a judge model's votes have a leaderboard of their own
            votes = votes.exclude(battle__judge__startswith=JUDGE_MODEL_PREFIX)
        if not settings.ARENA_RATINGS_INCLUDE_FLAGGED:
            votes = votes.exclude(review=Vote.Review.PENDING)
        if hold := settings.ARENA_NEW_ACCOUNT_HOLD_VOTES:
            seasoned = (
                Vote.objects.filter(user__isnull=False).values("user")
                .annotate(cast=models.Count("id")).filter(cast__gte=hold).values("user")
            )
            votes = votes.filter(Q(user__isnull=True) | Q(user__in=seasoned))
        return votes


class Vote(models.Model):
    """The single verdict on a battle; the one-to-one key makes a second vote impossible."""

    class Outcome(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTHBAD = "bothbad", "Both are bad"

        @property
        def code(self) -> int:
            """The outcome's code in the rating math (arena.ratings: A_WINS, B_WINS, TIE, BOTH_BAD)."""
            return _OUTCOME_CODES[self.value]

        @classmethod
        def from_code(cls, code: int) -> Vote.Outcome:
            return cls(_OUTCOMES_BY_CODE[code])

    class Review(models.TextChoices):
        """Where a flagged vote stands: it stays out of the ratings until an admin includes it."""

        NONE = "", "not flagged"
        PENDING = "pending", "waiting for review"
        INCLUDED = "included", "included"
        EXCLUDED = "excluded", "excluded"

    battle = models.OneToOneField(Battle, on_delete=models.CASCADE, related_name="vote")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    client_id = models.CharField(max_length=64, db_index=True)
    # The voter's account where there is one (ARENA_ACCESS accounts or sso); kept if it is deleted.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="arena_votes"
    )
    identity_flagged = models.BooleanField(
        default=False, help_text="A reply named a model or vendor; excluded from ratings by default."
    )
    # Why the vote was flagged (arena.detection's reasons); never shown to the voter.
    flag_reasons = models.JSONField(default=list, blank=True)
    review = models.CharField(max_length=8, choices=Review.choices, default=Review.NONE, blank=True)
    counted = models.BooleanField(default=False, help_text="Included in the rating counts.")
    # A judge model's explanation of its verdict (judged battles); empty for a person's vote.
    reasoning = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = VoteQuerySet.as_manager()

    class Meta:
        indexes = [
            # The refresh task looks for votes not yet counted after every burst of votes.
            models.Index(fields=["id"], condition=models.Q(counted=False), name="vote_uncounted"),
            # The admin's review list.
            models.Index(fields=["id"], condition=models.Q(review="pending"), name="vote_review_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.battle_id}: {self.outcome}"


class FlaggedVote(Vote):
    """The admin's review list: votes detection or the identity check flagged (arena.detection)."""

    class Meta:
        proxy = True
        verbose_name = "flagged vote"


_OUTCOME_CODES = {"a": ratings.A_WINS, "b": ratings.B_WINS, "tie": ratings.TIE, "bothbad": ratings.BOTH_BAD}
_OUTCOMES_BY_CODE = {code: value for value, code in _OUTCOME_CODES.items()}


class PairCount(models.Model):
    """How many counted votes had this model on side A, that one on side B, and this outcome.

    The leaderboard is fitted from these K x K x 4 counts, so a refit costs O(K^2) whatever the
    number of votes; a vote adds 1 to one row.
    """

    model_a = models.ForeignKey(ChatModel, on_delete=models.CASCADE, related_name="+")
    model_b = models.ForeignKey(ChatModel, on_delete=models.CASCADE, related_name="+")
    outcome = models.PositiveSmallIntegerField()  # arena.ratings.A_WINS / B_WINS / TIE / BOTH_BAD
    count = models.PositiveIntegerField(default=0)
    # The same votes' inverse-probability weights (arena.sampling.vote_weight), summed and squared:
    # what the weighted fit and its intervals read (ARENA_RATINGS_WEIGHTING).
    weight = models.FloatField(default=0.0)
    weight_sq = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_a", "model_b", "outcome"], name="paircount_unique_cell")
        ]

    def __str__(self) -> str:
        return f"{self.model_a_id} vs {self.model_b_id}, outcome {self.outcome}: {self.count}"


def invitation_token() -> str:
    return secrets.token_urlsafe(24)


def invitation_expiry():
    return timezone.now() + timedelta(days=14)


class Invitation(models.Model):
    """A sign-up link an admin hands out (ARENA_ACCESS=accounts): each use makes one account."""

    token = models.CharField(max_length=64, unique=True, default=invitation_token, editable=False)
    note = models.CharField(max_length=200, blank=True, help_text="Whom it is for; admins only.")
    max_uses = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    uses = models.PositiveIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField(default=invitation_expiry)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.note or f"invitation {self.pk}"

    @property
    def usable(self) -> bool:
        return self.uses < self.max_uses and self.expires_at > timezone.now()


# --- judged battles: a prompt set through model pairs, voted on by a judge model ----------------


class PromptSet(models.Model):
    """Prompts imported from a JSON-lines file (arena.prompt_files), judged runs' questions."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="prompts")
    index = models.PositiveIntegerField()
    turns = models.JSONField(help_text="The user's messages, in order.")
    category = models.CharField(max_length=100, blank=True)
    question_id = models.CharField(max_length=200, blank=True)
    reference = models.JSONField(default=list, blank=True, help_text="Reference answers, one per turn.")

    class Meta:
        ordering = ["prompt_set", "index"]
        constraints = [models.UniqueConstraint(fields=["prompt_set", "index"], name="prompt_unique_index")]

    def __str__(self) -> str:
        return f"{self.prompt_set_id} #{self.index}"


class JudgeRun(models.Model):
    """A prompt set's answers from some models, each pair judged in both orders by a judge model."""

    class Pairs(models.TextChoices):
        ALL = "all", "Every pair of the models, on every prompt"
        ADAPTIVE = "adaptive", "One pair per prompt, drawn by the adaptive pair-sampling policy"

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        CANCELLED = "cancelled"

    prompt_set = models.ForeignKey(PromptSet, on_delete=models.PROTECT, related_name="runs")
    judge = models.ForeignKey(ChatModel, on_delete=models.PROTECT, related_name="+")
    contestants = models.ManyToManyField(ChatModel, related_name="+", verbose_name="models")
    pairs = models.CharField(max_length=16, choices=Pairs.choices, default=Pairs.ALL)
    judge_prompt = models.TextField()
    concurrency = models.PositiveIntegerField(
        default=8, validators=[MinValueValidator(1)], help_text="Generations in flight at once for this run."
    )
    max_generations = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Plan no more answers and verdicts than this (prompts are taken in order).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    generations = models.PositiveIntegerField(default=0, help_text="Requests made to models so far.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk}: {self.prompt_set_id} judged by {self.judge_id}"


class WorkStatus(models.TextChoices):
    """Where an answer or a verdict of a run is: waiting, held by a worker (a claim), ended."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"  # an answer no retry could produce
    INVALID = "invalid"  # a verdict the judge failed to give, or gave unreadably
    SKIPPED = "skipped"  # a verdict on an answer that failed


class JudgeAnswer(models.Model):
    """One contestant's answers to one prompt (every turn), shared by both orders of its pairs."""

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="answers")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(ChatModel, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=WorkStatus.choices, default=WorkStatus.PENDING)
    texts = models.JSONField(default=list, blank=True, help_text="One answer per turn.")
    token_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # A claim names the worker's hold (its heartbeat in Redis); a redelivered message with an
    # older claim is ignored.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "prompt", "model"], name="judgeanswer_unique")]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.model_id} on prompt {self.prompt_id}"


class JudgeGame(models.Model):
    """One ordered pair on one prompt: the judge shown model_a's answer as A, model_b's as B."""

    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="games")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    model_a = models.ForeignKey(ChatModel, on_delete=models.PROTECT, related_name="+")
    model_b = models.ForeignKey(ChatModel, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=WorkStatus.choices, default=WorkStatus.PENDING)
    verdict = models.CharField(max_length=8, blank=True, help_text="a, b or tie; empty unless done.")
    reasoning = models.TextField(blank=True, help_text="The judge's last answer, verdict included.")
    attempts = models.PositiveIntegerField(default=0, help_text="Requests made to the judge.")
    error = models.TextField(blank=True)
    battle = models.OneToOneField(Battle, null=True, blank=True, on_delete=models.SET_NULL, related_name="judge_game")
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Each ordered pair is judged once per prompt and run, whatever a restart replays.
            models.UniqueConstraint(fields=["run", "prompt", "model_a", "model_b"], name="judgegame_unique"),
            models.CheckConstraint(condition=~Q(model_a=models.F("model_b")), name="judgegame_distinct_models"),
        ]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.model_a_id} vs {self.model_b_id} on prompt {self.prompt_id}"
