"""API keys and the off-chain participant directory (names, key custody).

A key is ``sl_<key_id>_<secret>``: the id finds the row, the secret is checked against a
SHA-256 hash in constant time. Secrets are 256-bit random, so a slow password hash adds
nothing; what matters is that the database never holds a usable key. Keys are shown once.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from chain_gateway.db import Base, UTCDateTime, utcnow
from chain_gateway.errors import NotFound

ROLES = ("bank", "fx_provider", "auditor", "operator")
_PREFIX = "sl"


class ParticipantProfile(Base):
    """What the chain does not hold about a participant: its name and who keeps its key."""

    __tablename__ = "participant_profiles"

    bic: Mapped[str] = mapped_column(String(11), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), unique=True)
    name: Mapped[str] = mapped_column(String(140))
    country: Mapped[str] = mapped_column(String(2))
    roles: Mapped[str] = mapped_column(String(64))  # comma-separated API roles
    key_custody: Mapped[str] = mapped_column(String(8))  # "gateway" | "self"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """One API key: hashed secret, owner and roles; revocation keeps the row for the audit."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    owner_bic: Mapped[str | None] = mapped_column(ForeignKey("participant_profiles.bic"), nullable=True)
    roles: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, its owner's BIC (None for the operator) and roles."""

    key_id: str
    bic: str | None
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    api_key: str  # shown once


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(session: Session, *, owner_bic: str | None, roles: list[str] | tuple[str, ...],
              label: str = "") -> IssuedKey:
    """Create a key; the only time its secret exists outside the caller is this return value."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(key_id=key_id, secret_sha256=_hash(secret), owner_bic=owner_bic,
                       roles=",".join(sorted(set(roles))), label=label))
    return IssuedKey(key_id=key_id, api_key=f"{_PREFIX}_{key_id}_{secret}")


def authenticate(session: Session, presented: str) -> Principal | None:
    """The principal behind a presented key, or None (unknown, malformed or revoked)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != _PREFIX:
        hmac.compare_digest(_hash(presented), "0" * 64)  # same work either way
        return None
    row = session.get(ApiKey, parts[1])
    expected = row.secret_sha256 if row is not None else "0" * 64
    ok = hmac.compare_digest(_hash(parts[2]), expected)
    if row is None or not ok or row.revoked_at is not None:
        return None
    return Principal(key_id=row.key_id, bic=row.owner_bic, roles=frozenset(row.roles.split(",")))


def revoke_key(session: Session, *, key_id: str, by: Principal) -> None:
    """Revoke a key: the operator any, a participant its own."""
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None or not (by.has("operator") or row.owner_bic == by.bic):
        raise NotFound(f"no active key {key_id} that you may revoke")
    row.revoked_at = utcnow()


def get_profile(session: Session, bic: str) -> ParticipantProfile | None:
    return session.get(ParticipantProfile, bic)


def profile_by_address(session: Session, address: str) -> ParticipantProfile | None:
    return session.scalars(select(ParticipantProfile).where(ParticipantProfile.address == address)).first()


def list_profiles(session: Session) -> list[ParticipantProfile]:
    return list(session.scalars(select(ParticipantProfile).order_by(ParticipantProfile.bic)))
