"""Deterministic, plausible replies for the TGI development server.

A reply is a pure function of (model id, prompt, seed): a few sentences drawn from a small
vocabulary, sometimes with a bullet list or a fenced code block, mentioning a word or two from the
prompt's last user message. It is cut into word-piece tokens the way a real tokenizer would be seen
through TGI's stream, including TGI's partial-UTF-8 behaviour: the token that holds only the first
bytes of a multi-byte character has `text == ""`, and the next token carries the whole character.
Concatenating the token texts always gives back the reply text exactly.
"""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from dataclasses import dataclass

EOS_TOKEN_ID = 2
EOS_TEXT = "</s>"
MIN_REPLY_TOKENS = 30
MAX_REPLY_TOKENS = 120
VOCAB_SIZE = 32000
# Llama-style vocabularies: <unk>, <s>, </s>, then the 256 byte-fallback tokens <0x00>..<0xFF>.
_BYTE_TOKEN_OFFSET = 3
_FIRST_WORD_TOKEN_ID = _BYTE_TOKEN_OFFSET + 256


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    logprob: float
    special: bool = False

    def as_json(self) -> dict:
        return {"id": self.id, "text": self.text, "logprob": self.logprob, "special": self.special}


def eos_token() -> Token:
    return Token(EOS_TOKEN_ID, EOS_TEXT, -0.0625, special=True)


def count_input_tokens(inputs: str) -> int:
    """Rough token count of a prompt: whitespace-separated words (at least 1 for any text)."""
    return max(1, len(inputs.split())) if inputs else 0


# --- what the user asked about ---------------------------------------------------------------

# Last user turn in the chat templates the arena uses: Zephyr, ChatML, Llama-2 / Mistral.
_USER_TURN_PATTERNS = (
    re.compile(r"<\|user\|>\s*(.*?)(?:</s>|<\|assistant\|>|$)", re.S),
    re.compile(r"<\|im_start\|>user\s*(.*?)(?:<\|im_end\|>|$)", re.S),
    re.compile(r"\[INST\](.*?)(?:\[/INST\]|$)", re.S),
)
_SYSTEM_BLOCK = re.compile(r"<<SYS>>.*?<</SYS>>", re.S)
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_STOPWORDS = frozenset(
    [
        "about", "above", "after", "again", "also", "always", "another", "anything", "because", "been", "before",
        "being", "below", "between", "both", "came", "come", "could", "didn", "does", "doing", "done", "down", "during",
        "each", "either", "else", "even", "every", "explain", "from", "further", "give", "have", "having", "here",
        "hers", "herself", "himself", "however", "into", "itself", "just", "know", "like", "little", "make", "many",
        "more", "most", "much", "must", "myself", "need", "never", "only", "other", "ought", "ourselves", "over",
        "please", "quite", "rather", "really", "same", "shall", "should", "show", "since", "some", "something", "such",
        "tell", "than", "that", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "thing",
        "things", "think", "this", "those", "though", "through", "under", "until", "upon", "very", "want", "were",
        "what", "whatever", "when", "where", "whether", "which", "while", "whom", "whose", "will", "with", "within",
        "without", "would", "write", "your", "yours", "yourself",
    ]
)


def last_user_message(prompt: str) -> str:
    """The last user turn of a templated chat prompt, or the whole prompt if no template is seen."""
    for pattern in _USER_TURN_PATTERNS:
        turns = pattern.findall(prompt)
        if turns:
            return _SYSTEM_BLOCK.sub(" ", turns[-1]).strip()
    return prompt.strip()


def topic_words(prompt: str, rng: random.Random, limit: int = 2) -> list[str]:
    words = _WORD.findall(last_user_message(prompt))
    seen: dict[str, str] = {}
    for position, word in enumerate(words):
        key = word.lower()
        if len(word) < 4 or key in _STOPWORDS or key in seen:
            continue
        # A capital that is only there because the word opens the message is not a proper noun.
        seen[key] = key if position == 0 and word[1:].islower() else word
    candidates = sorted(seen.values(), key=len, reverse=True)[:5]
    rng.shuffle(candidates)
    return candidates[:limit]


# --- the reply -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Voice:
    """Each model id gets one voice, so two models rarely open their replies the same way."""

    openers: tuple[str, ...]
    markdown_share: float  # how often a reply carries a bullet list or a code block


_VOICES = (
    _Voice(("Great question!", "Happy to help!", "Oh, good one.", "Sure thing!", "Absolutely."), 0.3),
    _Voice(("Short answer first.", "In brief:", "Here is the gist.", "Quick summary:", "Good question."), 0.4),
    _Voice(("Let's break this down.", "Here's how I would think about it.", "There are a few angles to this.",
            "Let's look at this step by step.", "That's a common point of confusion."), 0.7),
)
# Every topic sentence holds an em dash, so every reply has a character split across two tokens.
_TOPIC_SENTENCES = (
    "When it comes to **{topic}**, the key is to start simple — then refine as you learn more.",
    "The short answer on {topic} is that it depends on your constraints — mostly time, budget and scale.",
    "{Topic} is a broad subject — but a few principles cover most situations.",
    "There are a couple of ways to approach {topic} — each with its own trade-offs.",
    "Most people overthink {topic} — the basics get you surprisingly far.",
    "I'd think of {topic} in two parts — what you need now, and what can wait.",
    "{Topic} comes up a lot — and the answer is usually simpler than it looks.",
    "People get {topic} wrong in predictable ways — so let's start there.",
)
_SECOND_TOPIC_SENTENCES = (
    "The same idea applies to {topic}, too.",
    "It is worth looking at **{topic}** separately, since it changes the picture a bit.",
    "Don't forget about {topic} either.",
)
_FILLERS = (
    "In practice, a small experiment usually tells you more than a long debate.",
    "It also helps to write down what success looks like before you begin.",
    "Keep in mind that trade-offs are normal, and there is rarely one perfect answer.",
    "If you are unsure, start with the option that is easiest to undo.",
    "Measure the result, compare it with your expectations, and adjust.",
    "Documentation and a few good examples go a long way here.",
    "A common mistake is to optimize too early, before the real bottleneck is known.",
    "Talking to someone who has done it before can save you a lot of time.",
    "Consistency matters more than intensity over the long run.",
    "Try to keep each step small enough that you can check it on its own.",
    "Be careful with edge cases, since they tend to show up at the worst moment.",
    "As a rule of thumb, prefer clarity over cleverness.",
    "You can always revisit the decision once you have more data.",
    "Naïve approaches are often fine at first; refine them when they stop working.",
    "That said, context matters a lot, so adapt this to your own situation.",
)
_BULLETS = (
    ("Scope", "decide what is in and what is out."),
    ("Timing", "plan for the slow parts first."),
    ("Feedback", "check results early and often."),
    ("Cost", "estimate it before you commit."),
    ("Risks", "list what could go wrong and how you would notice."),
    ("Tools", "pick ones you already know."),
)
_CODE_SNIPPETS = (
    "def summarize(items):\n    return sorted(set(items))",
    "def average(values):\n    return sum(values) / len(values) if values else 0.0",
    "for index, line in enumerate(lines, start=1):\n    print(index, line.strip())",
)
_CLOSERS = (
    "Hope this helps!",
    "Let me know if you'd like more detail on any of these points.",
    "Want me to go deeper on {topic}?",
    "Good luck, and feel free to ask follow-up questions.",
    "I hope that gives you a useful starting point 🙂",
)


def _rng_for(model_id: str, prompt: str, seed: int | None) -> random.Random:
    digest = hashlib.sha256(f"{model_id}\x00{seed}\x00{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _voice(model_id: str) -> _Voice:
    return _VOICES[int.from_bytes(hashlib.sha256(model_id.encode()).digest()[:4], "big") % len(_VOICES)]


def _markdown_block(rng: random.Random, share: float) -> str | None:
    roll = rng.random()
    if roll >= share:
        return None
    if roll < share * 0.6:
        items = rng.sample(_BULLETS, 3)
        lines = "\n".join(f"- **{label}**: {text}" for label, text in items)
        return f"A few things to consider:\n\n{lines}"
    return f"For example, in Python:\n\n```python\n{rng.choice(_CODE_SNIPPETS)}\n```"


def _fill(template: str, word: str) -> str:
    return template.format(topic=word, Topic=word[:1].upper() + word[1:])


def reply_text(model_id: str, prompt: str, seed: int | None = None) -> str:
    rng = _rng_for(model_id, prompt, seed)
    topics = topic_words(prompt, rng) or ["this"]
    voice = _voice(model_id)
    head = f"{rng.choice(voice.openers)} {_fill(rng.choice(_TOPIC_SENTENCES), topics[0])}"
    block = _markdown_block(rng, voice.markdown_share)
    block_position = rng.randint(1, 2)  # before or after the body paragraph
    closer = _fill(rng.choice(_CLOSERS), topics[0])
    fillers = list(_FILLERS)
    rng.shuffle(fillers)
    if len(topics) > 1:
        fillers.insert(0, _fill(rng.choice(_SECOND_TOPIC_SENTENCES), topics[1]))
    target = rng.randint(MIN_REPLY_TOKENS, MAX_REPLY_TOKENS)

    def assemble(body: list[str], block: str | None) -> str:
        paragraphs = [head, " ".join(body)]
        if block:
            paragraphs.insert(block_position, block)
        return "\n\n".join(p for p in [*paragraphs, closer] if p)

    if block and _count(assemble([], block)) > MAX_REPLY_TOKENS:
        block = None
    body: list[str] = []
    for sentence in fillers:
        if _count(assemble(body, block)) >= target:
            break
        if _count(assemble([*body, sentence], block)) > MAX_REPLY_TOKENS:
            break
        body.append(sentence)
    return assemble(body, block)


def reply_tokens(model_id: str, prompt: str, seed: int | None = None) -> list[Token]:
    """The reply as tokens (no end-of-sequence token), at most MAX_REPLY_TOKENS of them."""
    return tokenize(reply_text(model_id, prompt, seed))[:MAX_REPLY_TOKENS]


# --- tokens ----------------------------------------------------------------------------------

# Newlines alone, words with their leading space, single punctuation marks with theirs, and any
# other whitespace: together these cover every character, so no text is ever lost.
_PIECE = re.compile(r"\n|[ \t]*\w+|[ \t]*[^\w\s]|[ \t]+|\s")
_LONG_WORD = 9  # longer words are split in two, like sub-word vocabularies do


def _pieces(text: str) -> list[str]:
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        piece = match.group()
        word = piece.lstrip(" \t")
        if len(word) > _LONG_WORD and word.isalpha():
            cut = len(piece) - len(word) + 6
            pieces += [piece[:cut], piece[cut:]]
        else:
            pieces.append(piece)
    return pieces


def _split_first_non_ascii(piece: str) -> list[str]:
    """TGI sends "" for a token that ends inside a UTF-8 character; the next one carries it."""
    index = next((i for i, ch in enumerate(piece) if ord(ch) > 127), None)
    if index is None:
        return [piece]
    before = piece[:index]
    if not before.strip():
        return ["", piece]
    return [before, "", piece[index:]]


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    for piece in _pieces(text):
        parts = _split_first_non_ascii(piece)
        for position, part in enumerate(parts):
            if part:
                token_id = _FIRST_WORD_TOKEN_ID + zlib.crc32(part.encode()) % (VOCAB_SIZE - _FIRST_WORD_TOKEN_ID)
            else:
                first_byte = parts[position + 1].lstrip(" \t").encode()[0]
                token_id = _BYTE_TOKEN_OFFSET + first_byte
            logprob = -round((zlib.crc32(f"{len(tokens)}:{part}".encode()) % 3000) / 1000, 4)
            tokens.append(Token(token_id, part, logprob))
    return tokens


def _count(text: str) -> int:
    return len(tokenize(text))
