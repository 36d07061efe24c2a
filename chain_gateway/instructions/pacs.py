"""pacs.008 / pacs.009 -> canonical instructions, one outcome per transaction.

Whole-message failures (malformed, wrong header, unsupported, schema-invalid, group
totals that do not add up) raise ``InvalidMessage``: nothing in the message is accepted.
Everything after that is per transaction: each ``CdtTrfTxInf`` becomes either a
``PaymentInstruction`` or a rejection carrying its ISO reason code, and one bad
transaction never sinks the others (API.md "ISO 20022").

Settlement leg (API.md): the debited participant is ``InstgAgt`` (transaction, then group
header), falling back to ``DbtrAgt`` (and, in a pacs.009, to the ``Dbtr`` institution
itself); the credited one is ``InstdAgt`` / ``CdtrAgt`` / pacs.009 ``Cdtr`` likewise. The
first of these present decides: an unresolvable ``InstgAgt`` is not rescued by
``DbtrAgt``. An agent is identified by ``BICFI``, else by ``ClrSysMmbId/MmbId`` looked up
in the ``BicDirectory``; unknown -> RC01.

UETR collisions inside one message: the first transaction with a UETR keeps it (whatever
its own outcome); every later one with the same UETR is rejected with ``DuplicateUetr``
(DUPL), because a UETR settles at most once.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from lxml import etree

from chain_gateway.errors import DuplicateUetr, Forbidden, GatewayError, InvalidAgent, InvalidMessage

from .bic import normalise_bic
from .currency import check_amount, parse_decimal, validate_currency
from .directory import BicDirectory, require_registered, resolve_member_id
from .isoread import AppHeader, read_iso_message
from .model import Party, PaymentInstruction, Priority
from .uetr import new_uetr, parse_uetr
from .xmlsafe import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH

#: Payment messages accepted by ``parse_payment_message`` (001.08 is the floor: API.md).
SUPPORTED_PAYMENT_MESSAGES: Final = frozenset(
    {"pacs.008.001.08", "pacs.008.001.09", "pacs.008.001.12", "pacs.009.001.08", "pacs.009.001.11"}
)
_ROOTS: Final = {"pacs.008": "FIToFICstmrCdtTrf", "pacs.009": "FICdtTrf"}
_URGENT: Final = frozenset({"URGT", "HIGH"})

PaymentMessageType = Literal["pacs.008", "pacs.009"]


@dataclass(frozen=True)
class ParsedTransaction:
    """One ``CdtTrfTxInf``: an instruction, or the reason it was rejected."""

    index: int
    uetr: uuid.UUID
    uetr_generated: bool
    end_to_end_id: str | None
    instruction_id: str | None
    transaction_id: str | None
    instruction: PaymentInstruction | None
    rejection: GatewayError | None

    @property
    def accepted(self) -> bool:
        """True when the transaction became an instruction."""
        return self.instruction is not None

    @property
    def reason_code(self) -> str | None:
        """The rejection's ISO reason code, if rejected."""
        return None if self.rejection is None else self.rejection.reason_code


@dataclass(frozen=True)
class ParsedMessage:
    """A parsed pacs.008/pacs.009: group identity plus one outcome per transaction."""

    message_id: str
    message_type: PaymentMessageType
    version: str
    created_at: str | None
    header: AppHeader | None
    transactions: tuple[ParsedTransaction, ...]

    def instructions(self) -> list[PaymentInstruction]:
        """The accepted instructions, in message order."""
        return [t.instruction for t in self.transactions if t.instruction is not None]

    def rejections(self) -> list[ParsedTransaction]:
        """The rejected transactions, in message order."""
        return [t for t in self.transactions if t.instruction is None]


class _Reader:
    """Namespace-bound lookups by local-name paths (``"PmtId/UETR"``)."""

    def __init__(self, namespace: str) -> None:
        self._ns = namespace

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self._ns}}}{step}" for step in path.split("/"))

    def find(self, element: etree._Element | None, path: str) -> etree._Element | None:
        return None if element is None else element.find(self._path(path))

    def findall(self, element: etree._Element, path: str) -> list[etree._Element]:
        return list(element.iterfind(self._path(path)))

    def text(self, element: etree._Element | None, path: str) -> str | None:
        found = self.find(element, path)
        return None if found is None or found.text is None else found.text.strip()


def parse_payment_message(
    data: bytes | str,
    directory: BicDirectory,
    *,
    caller_bic: str | None = None,
    queue_if_insufficient: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    uetr_factory: Callable[[], uuid.UUID] = new_uetr,
) -> ParsedMessage:
    """Parse a pacs.008 / pacs.009 (any wrapper, with or without AppHdr).

    Raises InvalidMessage (FF01; AM18 / AM10 for a wrong NbOfTxs / control sum) for
    the whole message; per-transaction problems come back as ``ParsedTransaction.rejection``.
    ``caller_bic``: when given, a transaction whose debited participant is not the caller is
    rejected with AG01. ``queue_if_insufficient`` applies to every transaction (ISO has no
    such field).
    """
    message = read_iso_message(
        data, accepted=SUPPORTED_PAYMENT_MESSAGES, max_bytes=max_bytes, max_depth=max_depth
    )
    message_type: PaymentMessageType = "pacs.008" if message.message_id.message == "008" else "pacs.009"
    read = _Reader(message.message_id.namespace)
    root = read.find(message.document, _ROOTS[message_type])
    if root is None:  # pragma: no cover - the XSD requires it
        raise InvalidMessage(f"{message.message_id} Document has no {_ROOTS[message_type]}")
    group = read.find(root, "GrpHdr")
    transactions = read.findall(root, "CdtTrfTxInf")
    _check_group(read, group, transactions)
    caller = None if caller_bic is None else normalise_bic(caller_bic, role="caller")
    context = _Context(read, group, directory, message_type, caller, queue_if_insufficient,
                       read.text(group, "MsgId"))
    outcomes = tuple(_outcomes(context, transactions, uetr_factory))
    return ParsedMessage(
        message_id=read.text(group, "MsgId") or "",
        message_type=message_type,
        version=str(message.message_id),
        created_at=read.text(group, "CreDtTm"),
        header=message.header,
        transactions=outcomes,
    )


def _check_group(read: _Reader, group: etree._Element | None, transactions: list[etree._Element]) -> None:
    """Group-level consistency: a count or total that disagrees means a truncated or altered message."""
    declared = read.text(group, "NbOfTxs")
    if declared is not None and int(declared) != len(transactions):
        raise InvalidMessage(
            f"GrpHdr/NbOfTxs is {declared} but the message has {len(transactions)} transactions",
            reason_code="AM18",
            expected=declared,
            actual=len(transactions),
        )
    amounts = [read.find(tx, "IntrBkSttlmAmt") for tx in transactions]
    values = [Decimal((a.text or "0").strip()) for a in amounts if a is not None]
    control_sum = read.text(group, "CtrlSum")
    if control_sum is not None and Decimal(control_sum) != sum(values, Decimal(0)):
        raise InvalidMessage(
            f"GrpHdr/CtrlSum {control_sum} is not the sum of the transaction amounts",
            reason_code="AM10",
        )
    total = read.find(group, "TtlIntrBkSttlmAmt")
    if total is not None:
        currencies = {a.get("Ccy") for a in amounts if a is not None}
        if currencies != {total.get("Ccy")} or Decimal((total.text or "0").strip()) != sum(values, Decimal(0)):
            raise InvalidMessage(
                "GrpHdr/TtlIntrBkSttlmAmt is not the sum of the transaction amounts in its currency",
                reason_code="AM10",
            )


@dataclass(frozen=True)
class _Context:
    read: _Reader
    group: etree._Element | None
    directory: BicDirectory
    message_type: PaymentMessageType
    caller: str | None
    queue_if_insufficient: bool
    message_id: str | None


def _outcomes(
    ctx: _Context, transactions: list[etree._Element], uetr_factory: Callable[[], uuid.UUID]
) -> Iterator[ParsedTransaction]:
    """One outcome per transaction, in order, with in-message UETR collision detection."""
    first_use: dict[uuid.UUID, int] = {}
    for index, tx in enumerate(transactions):
        read = ctx.read
        uetr_text = read.text(tx, "PmtId/UETR")
        generated = uetr_text is None
        rejection: GatewayError | None = None
        instruction: PaymentInstruction | None = None
        try:
            uetr = uetr_factory() if uetr_text is None else parse_uetr(uetr_text)
        except GatewayError as exc:  # pragma: no cover - the XSD pattern already enforces v4
            uetr, rejection = uetr_factory(), exc
        if rejection is None and uetr in first_use:
            rejection = DuplicateUetr(
                f"UETR {uetr} is already used by transaction {first_use[uetr] + 1} of this message",
                uetr=str(uetr),
                first_index=first_use[uetr],
            )
        first_use.setdefault(uetr, index)
        if rejection is None:
            try:
                instruction = _instruction(ctx, tx, uetr)
            except GatewayError as exc:
                rejection = exc
        yield ParsedTransaction(
            index=index,
            uetr=uetr,
            uetr_generated=generated,
            end_to_end_id=read.text(tx, "PmtId/EndToEndId"),
            instruction_id=read.text(tx, "PmtId/InstrId"),
            transaction_id=read.text(tx, "PmtId/TxId"),
            instruction=instruction,
            rejection=rejection,
        )


def _instruction(ctx: _Context, tx: etree._Element, uetr: uuid.UUID) -> PaymentInstruction:
    """Map one transaction; raises the GatewayError that rejects it."""
    read = ctx.read
    amount = read.find(tx, "IntrBkSttlmAmt")
    instructed = read.find(tx, "InstdAmt")
    ustrd = [u.text.strip() for u in read.findall(tx, "RmtInf/Ustrd") if u.text and u.text.strip()]
    fi_parties = ctx.message_type == "pacs.009"
    currency = amount.get("Ccy") if amount is not None else None
    amount_text = (amount.text or "").strip() if amount is not None else None
    # Currency and amount first, so a commodity currency reads AM03 whoever the agents are.
    check_amount(parse_decimal(amount_text), validate_currency(currency))
    debtor_agent = _agent(ctx, tx, ("InstgAgt",), "DbtrAgt", "Dbtr" if fi_parties else None, "debtor_agent")
    creditor_agent = _agent(ctx, tx, ("InstdAgt",), "CdtrAgt", "Cdtr" if fi_parties else None, "creditor_agent")
    if ctx.caller is not None and debtor_agent != ctx.caller:
        raise Forbidden(
            f"the debited participant {debtor_agent} is not the caller {ctx.caller}: "
            "a bank can only instruct payments from its own account",
            uetr=str(uetr),
        )
    fields: dict[str, object] = {
        "uetr": uetr,
        "debtor_agent": debtor_agent,
        "creditor_agent": creditor_agent,
        "currency": currency,
        "amount": amount_text,
        "end_to_end_id": read.text(tx, "PmtId/EndToEndId") or "NOTPROVIDED",
        "remittance_info": "\n".join(ustrd) or None,
        "priority": _priority(read, tx, ctx.group),
        "queue_if_insufficient": ctx.queue_if_insufficient,
        "value_date": read.text(tx, "IntrBkSttlmDt") or read.text(ctx.group, "IntrBkSttlmDt"),
        "debtor": _party(read, tx, "Dbtr", fi_parties),
        "creditor": _party(read, tx, "Cdtr", fi_parties),
        "instructed_amount": (instructed.text or "").strip() if instructed is not None else None,
        "instructed_currency": instructed.get("Ccy") if instructed is not None else None,
        "exchange_rate": read.text(tx, "XchgRate"),
        "message_id": ctx.message_id,
        "message_type": ctx.message_type,
    }
    return PaymentInstruction.model_validate(fields)


def _agent(
    ctx: _Context,
    tx: etree._Element,
    group_level: tuple[str, ...],
    agent: str,
    institution: str | None,
    role: str,
) -> str:
    """Resolve the first present of: transaction then group ``InstgAgt``/``InstdAgt``, agent, FI party."""
    read = ctx.read
    candidates: list[tuple[str, etree._Element | None]] = [(name, read.find(tx, name)) for name in group_level]
    candidates += [(f"GrpHdr/{name}", read.find(ctx.group, name)) for name in group_level]
    candidates.append((agent, read.find(tx, agent)))
    if institution is not None:
        candidates.append((institution, read.find(tx, institution)))
    for source, element in candidates:
        if element is None:
            continue
        bicfi = read.text(element, "FinInstnId/BICFI")
        if bicfi is not None:
            return require_registered(bicfi, ctx.directory, role=f"{role} ({source})")
        member_id = read.text(element, "FinInstnId/ClrSysMmbId/MmbId")
        if member_id is not None:
            return resolve_member_id(member_id, ctx.directory, role=f"{role} ({source})")
        raise InvalidAgent(
            f"{role} ({source}) is identified by neither BICFI nor ClrSysMmbId/MmbId", role=role
        )
    raise InvalidAgent(f"no {role}: the transaction names no agent for that side", role=role)


def _priority(read: _Reader, tx: etree._Element, group: etree._Element | None) -> Priority:
    """URGT/HIGH settlement or instruction priority -> urgent; anything else normal."""
    for value in (
        read.text(tx, "SttlmPrty"),
        read.text(tx, "PmtTpInf/InstrPrty"),
        read.text(group, "PmtTpInf/InstrPrty"),
    ):
        if value is not None:
            return "urgent" if value in _URGENT else "normal"
    return "normal"


def _party(read: _Reader, tx: etree._Element, name: str, institution: bool) -> Party | None:
    """Debtor/creditor as recorded: name, country, account (and BIC for an FI party)."""
    element = read.find(tx, name)
    if element is None:
        return None
    base = read.find(element, "FinInstnId") if institution else element
    account = read.find(tx, f"{name}Acct/Id")
    fields = {
        "name": read.text(base, "Nm"),
        "country": read.text(base, "PstlAdr/Ctry") or (None if institution else read.text(base, "CtryOfRes")),
        "account": read.text(account, "IBAN") or read.text(account, "Othr/Id"),
        "bic": read.text(base, "BICFI") if institution else None,
    }
    present = {k: v for k, v in fields.items() if v}
    if not present:
        return None
    try:
        return Party(**present)
    except InvalidMessage as exc:
        raise InvalidMessage(f"{name}: {exc.detail}", **exc.fields) from exc
