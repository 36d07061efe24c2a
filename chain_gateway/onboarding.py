"""Operator actions on participants: register on-chain and in the directory, suspend,
reinstate, fund and defund — each a chain transaction first, then the SQL record."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from eth_utils import keccak, to_checksum_address
from sqlalchemy.orm import Session

from chain_gateway.access import IssuedKey, ParticipantProfile, get_profile, issue_key, profile_by_address
from chain_gateway.errors import Conflict, InsufficientFunds, InvalidAgent, InvalidMessage, NotFound
from chain_gateway.instructions.bic import is_country_code, normalise_bic
from chain_gateway.instructions.currency import check_amount, from_minor, parse_decimal, to_minor, validate_currency
from chain_gateway.keys import KeyStore
from chain_gateway.ledger import ROLE_AUDITOR, ROLE_BANK, ROLE_FX_PROVIDER, LedgerClient
from chain_gateway.transactions import TransactionFailed

CHAIN_ROLES = {"bank": ROLE_BANK, "fx_provider": ROLE_FX_PROVIDER | ROLE_BANK, "auditor": ROLE_AUDITOR}


@dataclass(frozen=True)
class Registered:
    profile: ParticipantProfile
    key: IssuedKey
    tx_hash: str


def register_participant(session: Session, client: LedgerClient, keystore: KeyStore, *, bic: str, name: str,
                         country: str, roles: list[str], address: str | None) -> Registered:
    """Register on-chain (the gateway creates and keeps a key unless `address` is given),
    store the profile and issue the participant's first API key."""
    bic11 = normalise_bic(bic, role="bic")
    country = country.upper()
    if not is_country_code(country):
        raise InvalidMessage(f"'{country}' is not an ISO 3166 alpha-2 country code", field="country")
    if not roles or any(r not in CHAIN_ROLES for r in roles):
        raise InvalidMessage(f"roles must be a non-empty subset of {sorted(CHAIN_ROLES)}", field="roles")
    if get_profile(session, bic11) is not None or client.participant_of(bic11) is not None:
        raise Conflict(f"{bic11} is already registered", bic=bic11)
    if address is not None:
        try:
            address = to_checksum_address(address)
        except ValueError as exc:
            raise InvalidMessage(f"'{address}' is not an Ethereum address", field="address") from exc
        if profile_by_address(session, address) is not None or client.bic_of(address) != b"\0" * 11:
            raise Conflict(f"address {address} is already registered", address=address)
        custody = "self"
    else:
        address = keystore.create().address
        custody = "gateway"
    chain_roles = 0
    for role in roles:
        chain_roles |= CHAIN_ROLES[role]
    receipt = client.register(address, bic11, country, chain_roles)
    profile = ParticipantProfile(bic=bic11, address=address, name=name, country=country, roles=",".join(roles),
                                 key_custody=custody)
    session.add(profile)
    session.flush()
    key = issue_key(session, owner_bic=bic11, roles=roles, label="registration")
    return Registered(profile=profile, key=key, tx_hash="0x" + bytes(receipt["transactionHash"]).hex())


def require_profile(session: Session, bic: str) -> ParticipantProfile:
    try:
        bic11 = normalise_bic(bic, role="bic")
    except InvalidAgent as exc:
        raise NotFound(f"no participant {bic}") from exc
    profile = get_profile(session, bic11)
    if profile is None:
        raise NotFound(f"no participant {bic11}")
    return profile


def set_active(session: Session, client: LedgerClient, *, bic: str, active: bool) -> str:
    profile = require_profile(session, bic)
    if client.is_active(profile.address) == active:
        raise Conflict(f"{profile.bic} is already {'active' if active else 'suspended'}")
    receipt = client.reinstate(profile.address) if active else client.suspend(profile.address)
    return "0x" + bytes(receipt["transactionHash"]).hex()


def reference_bytes(reference: str) -> bytes:
    """A funding reference as bytes32: ASCII up to 32 bytes verbatim (right-padded), else keccak."""
    raw = reference.encode("utf-8")
    return raw.ljust(32, b"\0") if len(raw) <= 32 and reference.isascii() else keccak(raw)


@dataclass(frozen=True)
class Movement:
    bic: str
    currency: str
    amount: Decimal
    reference: str
    tx_hash: str
    block_number: int
    balance: Decimal


def move_reserves(session: Session, client: LedgerClient, *, bic: str, currency: str, amount: object,
                  reference: str, fund: bool) -> Movement:
    """Fund or defund a participant's settlement balance (operator only; checked by the caller)."""
    profile = require_profile(session, bic)
    currency = validate_currency(currency)
    value = check_amount(parse_decimal(amount), currency)
    minor = to_minor(value, currency)
    ref = reference_bytes(reference)
    try:
        receipt = (client.fund if fund else client.defund)(profile.address, currency, minor, ref)
    except TransactionFailed as exc:
        if exc.error_name == "InsufficientBalance":
            raise InsufficientFunds(f"{profile.bic} holds less than {value} {currency}") from exc
        raise
    block = int(receipt["blockNumber"])
    return Movement(bic=profile.bic, currency=currency, amount=value, reference=reference,
                    tx_hash="0x" + bytes(receipt["transactionHash"]).hex(), block_number=block,
                    balance=from_minor(currency, client.balance_of(profile.address, currency, block)))
