"""What a ticket's text says: its sentiment (VADER, an offline lexicon model) and a topic key.

The sentiment is VADER's compound score in [-1, 1] (vaderSentiment ships its lexicon, so nothing
is downloaded). The topic key is a stable 48-bit hash of the subject's significant words, so two
tickets about "Export fails" and "RE: export failing!!" count as one repeated topic.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

MAX_TEXT = 2000  # VADER's cost grows with length; the opening of a ticket carries its tone
_WORD = re.compile(r"[a-z]{3,}")
_PREFIXES = re.compile(r"^\s*((re|fw|fwd|aw)\s*:\s*)+", re.IGNORECASE)
_STOP = frozenset("""the and for with not our you your are was were this that from have has had
can cant could would should please help issue problem question when what why how all any but
its it's get got into out there their them they about again still just""".split())


@lru_cache(maxsize=1)
def _analyzer():  # noqa: ANN202 - third-party type
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float | None:
    """VADER compound score of `text` in [-1, 1]; None for empty text."""
    text = (text or "").strip()
    if not text:
        return None
    return float(_analyzer().polarity_scores(text[:MAX_TEXT])["compound"])


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def topic_key(subject: str) -> int:
    """A hash of the subject's significant words (order-insensitive); 0 when nothing is left."""
    words = sorted({_stem(w) for w in _WORD.findall(_PREFIXES.sub("", subject or "").lower())} - _STOP)
    if not words:
        return 0
    digest = hashlib.blake2b(" ".join(words).encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big") or 1


def ticket_text(subject: str | None, description: str | None, comment: str | None = None) -> str:
    return "\n".join(part for part in (subject, description, comment) if part)
