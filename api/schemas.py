"""Request and response bodies (API.md's fixed fields). Amounts are decimal strings."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParticipantCreate(Strict):
    bic: str = Field(max_length=11)
    name: str = Field(min_length=1, max_length=140)
    country: str = Field(min_length=2, max_length=2)
    roles: list[Literal["bank", "fx_provider", "auditor"]] = Field(min_length=1, max_length=3)
    address: str | None = Field(default=None, max_length=42)


class ParticipantCreated(BaseModel):
    bic: str
    address: str
    api_key: str
    key_id: str
    tx_hash: str


class ParticipantPublic(BaseModel):
    bic: str
    name: str
    country: str
    roles: list[str]
    status: Literal["active", "suspended"]
    address: str
    key_custody: str


class ParticipantsPublic(BaseModel):
    items: list[ParticipantPublic]
    next_cursor: str | None = None


class StatusChanged(BaseModel):
    bic: str
    status: Literal["active", "suspended"]
    tx_hash: str


class KeyIssued(BaseModel):
    key_id: str
    api_key: str


class FundingRequest(Strict):
    bic: str = Field(max_length=11)
    currency: str = Field(max_length=3)
    amount: str = Field(max_length=40)
    reference: str = Field(min_length=1, max_length=140)


class FundingPublic(BaseModel):
    bic: str
    currency: str
    amount: str
    reference: str
    tx_hash: str
    block_number: int
    balance: str


class BalanceLine(BaseModel):
    currency: str
    amount: str


class BalancesPublic(BaseModel):
    bic: str
    block_number: int
    balances: list[BalanceLine]


class HistoryEntry(BaseModel):
    status: str
    at: str | None
    reason_code: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None


class PaymentPublic(BaseModel):
    uetr: str
    status: str
    reason_code: str | None = None
    debtor_agent: str
    creditor_agent: str
    currency: str
    amount: str
    end_to_end_id: str | None = None
    instruction_hash: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    history: list[HistoryEntry] = []


class PaymentsPublic(BaseModel):
    items: list[PaymentPublic]
    next_cursor: str | None = None


class MessageResult(BaseModel):
    message_id: str | None
    items: list[dict[str, Any]]


class PrepareResult(BaseModel):
    uetr: str
    instruction_hash: str
    canonical_instruction: dict[str, Any]
    digest: str
    deadline: int
    typed_data: dict[str, Any]
    debit_currency: str | None = None  # cross-currency: what the debtor pays, at most
    debit_amount: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "paused"]
    chain_id: int | None
    latest_block: int | None
    mirror_block: int | None
    mirror_lag_blocks: int | None


class SystemState(BaseModel):
    paused: bool
    tx_hash: str | None = None
