"""Watch-list screening: BICs, countries and names, matched before anything reaches the chain.

File format (docs/risk.md has the full description): CSV with a header row, or JSON Lines,
one entry per line, chosen by the file's suffix (``.csv``; ``.jsonl`` / ``.ndjson``)::

    type,value,list,reason
    bic,BADBKPKKA,OPERATOR-BLOCK,Institution under investigation
    country,KP,EU-SANCTIONS,Comprehensive sanctions
    name,Ivan Petrovich Sidorov,OFAC-SDN,SDN entry 12345

Blank lines and lines starting with ``#`` are skipped. ``type`` is ``bic``, ``country`` or
``name``; ``list`` and ``reason`` are free text kept with every match.

What is matched (``WatchList.screen``):
- ``bic`` entries against the debtor and creditor agents and the parties' BICs. An entry of
  8 characters (or 11 ending in ``XXX``, the head office) names the institution and matches
  every branch; an 11-character entry with another branch code matches that branch only.
- ``country`` entries (ISO 3166 alpha-2) against the parties' countries and the country
  inside every BIC above (characters 5-6).
- ``name`` entries against the parties' names and the remittance information, as whole-token
  sequences after normalisation: "IRAN" matches "Bank of Iran" but not "PIRANHA".

Normalisation (``tokens``), the same for the list and the payment: letters outside the
decomposable Latin range folded (``ø`` -> ``o``, ``ß`` -> ``ss``, ``æ`` -> ``ae``...), Unicode
NFKD with combining marks dropped (accents), case folded, apostrophes and full stops dropped
inside words (``O'Brien`` = ``OBrien``, ``U.S.A.`` = ``USA``), every other non-letter,
non-digit character a separator (hyphens, commas, extra spaces).

Speed: names are indexed by their first token, BICs and countries in hash maps, so a payment
costs a few dictionary look-ups per token whatever the list's size (scripts/bench_risk.py).
The list is reloaded without a restart: ``WatchListSource`` re-reads the file when its
modification time, size or inode changes (checked at most every ``check_interval_ms``), or
on ``reload()``. A file that fails to parse on reload leaves the previous list in force and
the error in ``last_error``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from chain_gateway.db import utcnow
from chain_gateway.errors import ConfigurationError
from chain_gateway.instructions.bic import BIC_PATTERN, HEAD_OFFICE_BRANCH, is_country_code
from chain_gateway.instructions.model import PaymentInstruction

log = logging.getLogger("gateway.risk.watchlist")

EntryType = Literal["bic", "country", "name"]
ENTRY_TYPES: Final = ("bic", "country", "name")
CSV_SUFFIXES: Final = (".csv",)
JSONL_SUFFIXES: Final = (".jsonl", ".ndjson")
MAX_MATCHES: Final = 20  # reported per payment; screening stops counting there

# Letters NFKD does not decompose into a base letter + combining mark.
_FOLD: Final = str.maketrans({
    "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D",
    "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ı": "i", "ß": "ss", "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T",
})
_JOINERS: Final = re.compile(r"['’‘`´.]")  # dropped inside words: O'Brien, U.S.A.
_TOKEN: Final = re.compile(r"[^\W_]+")  # runs of letters and digits, any script


def tokens(text: str) -> tuple[str, ...]:
    """The normalised word tokens of `text` (module docstring: accents, case, punctuation)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_FOLD))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return tuple(_TOKEN.findall(_JOINERS.sub("", text.casefold())))


def normalise_name(text: str) -> str:
    """`tokens` joined by single spaces: the comparable form of a name."""
    return " ".join(tokens(text))


def compact_bic(value: str) -> str:
    """A BIC as written in a list, made comparable: spaces dropped, upper case."""
    return "".join(value.split()).upper()


@dataclass(frozen=True)
class WatchEntry:
    """One line of the watch list; `key` is its normalised, comparable form."""

    type: EntryType
    value: str
    list_name: str
    reason: str
    key: str
    line: int

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "list": self.list_name, "reason": self.reason,
                "line": self.line}


@dataclass(frozen=True)
class Match:
    """A watch-list hit: the entry, the payment field it hit and the normalised value there."""

    entry: WatchEntry
    field: str
    value: str

    def as_dict(self) -> dict[str, Any]:
        return {"entry": self.entry.as_dict(), "field": self.field, "value": self.value}


def _entry(raw: Mapping[str, Any], line: int, source: str) -> WatchEntry:
    def text(name: str, required: bool) -> str:
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise ConfigurationError(f"{source}:{line}: the entry has no {name}")
            return ""
        if not isinstance(value, str):
            raise ConfigurationError(f"{source}:{line}: {name} must be text, not {type(value).__name__}")
        return value.strip()

    kind = text("type", True).lower()
    value = text("value", True)
    list_name, reason = text("list", False), text("reason", False)
    if kind == "bic":
        key = compact_bic(value)
        if not BIC_PATTERN.fullmatch(key) or not is_country_code(key[4:6]):
            raise ConfigurationError(f"{source}:{line}: {value!r} is not a BIC8 or BIC11")
        if len(key) == 11 and key.endswith(HEAD_OFFICE_BRANCH):
            key = key[:8]  # the head office's BIC11 names the institution, as BIC8 does
    elif kind == "country":
        key = value.upper()
        if not is_country_code(key):
            raise ConfigurationError(f"{source}:{line}: {value!r} is not an ISO 3166 alpha-2 country code")
    elif kind == "name":
        key = normalise_name(value)
        if not key:
            raise ConfigurationError(f"{source}:{line}: the name {value!r} has no letters or digits")
    else:
        raise ConfigurationError(f"{source}:{line}: type must be one of {list(ENTRY_TYPES)}, not {kind!r}")
    entry_type: EntryType = kind  # type: ignore[assignment]  # checked above
    return WatchEntry(type=entry_type, value=value, list_name=list_name, reason=reason, key=key, line=line)


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, line


def parse_jsonl(text: str, source: str = "<watch list>") -> list[WatchEntry]:
    entries = []
    for number, line in _content_lines(text):
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{source}:{number}: not a JSON object: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{source}:{number}: each line must be a JSON object")
        entries.append(_entry(raw, number, source))
    return entries


def parse_csv(text: str, source: str = "<watch list>") -> list[WatchEntry]:
    numbered = list(_content_lines(text))
    if not numbered:
        return []
    reader = csv.reader(io.StringIO("\n".join(line for _, line in numbered)))
    rows = list(reader)
    header = [h.strip().lower() for h in rows[0]]
    if "type" not in header or "value" not in header:
        raise ConfigurationError(f"{source}:{numbered[0][0]}: the first row must be a header with at least "
                                 "the columns type,value (and optionally list,reason)")
    entries = []
    for (number, _), row in zip(numbered[1:], rows[1:], strict=False):
        if len(row) > len(header):
            raise ConfigurationError(f"{source}:{number}: {len(row)} columns, the header has {len(header)} "
                                     "(quote values that contain commas)")
        entries.append(_entry(dict(zip(header, row, strict=False)), number, source))
    return entries


def parse(text: str, fmt: Literal["csv", "jsonl"], source: str = "<watch list>") -> list[WatchEntry]:
    return parse_csv(text, source) if fmt == "csv" else parse_jsonl(text, source)


def format_of(path: Path) -> Literal["csv", "jsonl"]:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    raise ConfigurationError(f"watch list {path}: unknown format {suffix!r}; use .csv, .jsonl or .ndjson")


@dataclass(frozen=True)
class WatchList:
    """An immutable, indexed watch list. Build with ``WatchList.of(entries)`` or ``load(path)``."""

    entries: tuple[WatchEntry, ...] = ()
    source: str = "<empty>"
    digest: str = hashlib.sha256(b"").hexdigest()
    loaded_at: datetime = field(default_factory=utcnow)
    _institutions: Mapping[str, WatchEntry] = field(default_factory=dict, repr=False)  # BIC8 -> entry
    _branches: Mapping[str, WatchEntry] = field(default_factory=dict, repr=False)  # BIC11 -> entry
    _countries: Mapping[str, WatchEntry] = field(default_factory=dict, repr=False)
    _names: Mapping[str, tuple[tuple[tuple[str, ...], WatchEntry], ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, entries: Iterable[WatchEntry], *, source: str = "<memory>", digest: str | None = None) -> WatchList:
        items = tuple(entries)
        institutions: dict[str, WatchEntry] = {}
        branches: dict[str, WatchEntry] = {}
        countries: dict[str, WatchEntry] = {}
        names: dict[str, list[tuple[tuple[str, ...], WatchEntry]]] = {}
        for e in items:
            if e.type == "bic":
                (institutions if len(e.key) == 8 else branches).setdefault(e.key, e)
            elif e.type == "country":
                countries.setdefault(e.key, e)
            else:
                seq = tuple(e.key.split(" "))
                names.setdefault(seq[0], []).append((seq, e))
        # Longest sequences first, so the most specific entry is reported first.
        index = {first: tuple(sorted(c, key=lambda c: -len(c[0]))) for first, c in names.items()}
        if digest is None:
            digest = hashlib.sha256("\n".join(f"{e.type}\t{e.key}\t{e.list_name}" for e in items).encode()).hexdigest()
        return cls(entries=items, source=source, digest=digest, _institutions=institutions, _branches=branches,
                   _countries=countries, _names=index)

    @classmethod
    def load(cls, path: Path) -> WatchList:
        """Read and index the file at `path` (ConfigurationError if missing or invalid)."""
        fmt = format_of(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the watch list {path}: {exc.strerror}") from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"watch list {path} is not UTF-8 text") from exc
        entries = parse(text, fmt, str(path))
        return cls.of(entries, source=str(path), digest=hashlib.sha256(raw).hexdigest())

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self) -> dict[str, Any]:
        counts = {t: 0 for t in ENTRY_TYPES}
        for e in self.entries:
            counts[e.type] += 1
        return {"source": self.source, "sha256": self.digest, "entries": len(self.entries), "by_type": counts,
                "loaded_at": self.loaded_at.isoformat()}

    # ------------------------------------------------------------------ matching
    def match_bic(self, bic: str | None, field_name: str, out: list[Match]) -> None:
        if not bic:
            return
        bic11 = bic if len(bic) == 11 else bic + HEAD_OFFICE_BRANCH
        entry = self._institutions.get(bic11[:8]) or self._branches.get(bic11)
        if entry is not None:
            out.append(Match(entry, field_name, bic11))
        self.match_country(bic11[4:6], f"{field_name}.country", out)

    def match_country(self, country: str | None, field_name: str, out: list[Match]) -> None:
        if country:
            entry = self._countries.get(country.upper())
            if entry is not None:
                out.append(Match(entry, field_name, country.upper()))

    def match_text(self, text: str | None, field_name: str, out: list[Match]) -> None:
        if not text or not self._names:
            return
        words = tokens(text)
        n = len(words)
        for i, word in enumerate(words):
            candidates = self._names.get(word)
            if candidates is None:
                continue
            for seq, entry in candidates:
                if seq == words[i:i + len(seq)] and i + len(seq) <= n:
                    out.append(Match(entry, field_name, " ".join(seq)))
                    if len(out) >= MAX_MATCHES:
                        return

    def screen(self, instruction: PaymentInstruction) -> list[Match]:
        """Every hit of `instruction` (agents, parties, remittance), at most MAX_MATCHES."""
        out: list[Match] = []
        if not self.entries:
            return out
        self.match_bic(instruction.debtor_agent, "debtor_agent", out)
        self.match_bic(instruction.creditor_agent, "creditor_agent", out)
        for role, party in (("debtor", instruction.debtor), ("creditor", instruction.creditor)):
            if party is None:
                continue
            self.match_bic(party.bic, f"{role}.bic", out)
            self.match_country(party.country, f"{role}.country", out)
            self.match_text(party.name, f"{role}.name", out)
        self.match_text(instruction.remittance_info, "remittance_info", out)
        return out[:MAX_MATCHES]


EMPTY: Final = WatchList()


class WatchListSource:
    """The watch list in force, re-read from its file when the file changes.

    ``current()`` costs one ``os.stat`` at most every ``check_interval_ms`` (0: every call).
    Thread-safe: readers get an immutable ``WatchList``; a reload swaps it whole.
    """

    def __init__(self, path: Path | None, *, check_interval_ms: int = 1000) -> None:
        self.path = path
        self.check_interval_ns = check_interval_ms * 1_000_000
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._checked_ns = 0
        self._list: WatchList = EMPTY
        if path is not None:
            self.reload()  # a configured list that cannot be read stops start-up (ConfigurationError)

    @classmethod
    def fixed(cls, watchlist: WatchList) -> WatchListSource:
        """A source that always answers `watchlist` (tests, benchmarks)."""
        source = cls(None)
        source._list = watchlist
        return source

    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, *, strict: bool = True) -> WatchList:
        """Re-read the file now. ``strict``: raise on a bad file; else keep the old list and
        put the error in ``last_error``."""
        if self.path is None:
            return self._list
        with self._lock:
            signature = self._stat()
            try:
                fresh = WatchList.load(self.path)
            except ConfigurationError as exc:
                self.last_error = exc.detail
                self._signature = signature  # do not retry the same broken file on every payment
                if strict:
                    raise
                log.error("watch list reload failed, the previous list (%d entries) stays in force: %s",
                          len(self._list), exc.detail)
                return self._list
            self._list, self._signature, self.last_error = fresh, signature, None
            self._checked_ns = time.monotonic_ns()
            log.info("watch list loaded from %s: %d entries (sha256 %s)", self.path, len(fresh), fresh.digest[:12])
            return fresh

    def current(self) -> WatchList:
        """The list in force, reloaded first if the file changed since the last check."""
        if self.path is None:
            return self._list
        now = time.monotonic_ns()
        if now - self._checked_ns >= self.check_interval_ns:
            self._checked_ns = now
            if self._stat() != self._signature:
                return self.reload(strict=False)
        return self._list


__all__ = [
    "EMPTY",
    "ENTRY_TYPES",
    "Match",
    "WatchEntry",
    "WatchList",
    "WatchListSource",
    "compact_bic",
    "format_of",
    "normalise_name",
    "parse",
    "parse_csv",
    "parse_jsonl",
    "tokens",
]
