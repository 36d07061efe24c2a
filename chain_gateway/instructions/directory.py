"""Who is a participant: the registry seen through a small protocol.

This package never talks to the chain. The gateway passes in an object that answers two
questions from its view of the on-chain registry (or the mirror); tests pass a
``StaticBicDirectory``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from chain_gateway.errors import InvalidAgent

from .bic import normalise_bic


@runtime_checkable
class BicDirectory(Protocol):
    """Read-only view of the participant registry."""

    def is_registered(self, bic11: str) -> bool:
        """True when ``bic11`` (already normalised to 11 characters) is a participant."""
        ...

    def bic_for_member_id(self, member_id: str) -> str | None:
        """The BIC of the participant with this clearing-system member id, or None."""
        ...


@dataclass(frozen=True)
class StaticBicDirectory:
    """An in-memory directory: a set of BIC11s and a member-id -> BIC map."""

    bics: frozenset[str] = frozenset()
    member_ids: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, bics: Iterable[str] = (), member_ids: Mapping[str, str] | None = None
    ) -> StaticBicDirectory:
        """Build a directory from BIC8/BIC11 strings; member ids map to registered BICs."""
        members = {mid: normalise_bic(bic) for mid, bic in (member_ids or {}).items()}
        return cls(frozenset(normalise_bic(b) for b in bics) | frozenset(members.values()), members)

    def is_registered(self, bic11: str) -> bool:
        """True when the BIC11 is in the set."""
        return bic11 in self.bics

    def bic_for_member_id(self, member_id: str) -> str | None:
        """The mapped BIC11, or None."""
        return self.member_ids.get(member_id)


def require_registered(bic: str, directory: BicDirectory, *, role: str) -> str:
    """Normalise ``bic`` and check it names a participant; raise InvalidAgent (RC01) if not."""
    bic11 = normalise_bic(bic, role=role)
    if not directory.is_registered(bic11):
        raise InvalidAgent(f"{role} {bic11} is not a registered participant", role=role, bic=bic11)
    return bic11


def resolve_member_id(member_id: str, directory: BicDirectory, *, role: str) -> str:
    """Map a clearing-system member id to a registered BIC11; raise InvalidAgent (RC01) if unknown."""
    bic = directory.bic_for_member_id(member_id)
    if bic is None:
        raise InvalidAgent(
            f"{role} clearing-system member id {member_id!r} is not a registered participant",
            role=role,
            member_id=member_id,
        )
    return require_registered(bic, directory, role=role)
