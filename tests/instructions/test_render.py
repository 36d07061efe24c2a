"""Rendering pacs.002.001.10 and camt.053.001.08: XSD-valid or RenderError, never a bad message."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from chain_gateway.errors import GatewayError
from chain_gateway.instructions import (
    CAMT053_VERSION,
    PACS002_VERSION,
    RenderError,
    Statement,
    StatementEntry,
    StaticBicDirectory,
    StatusReport,
    TransactionStatus,
    parse_payment_message,
    read_iso_message,
    render_camt053,
    render_pacs002,
    statuses_for,
)
from chain_gateway.instructions.pacs002 import TX_STATUS_CODES

from .isobuild import Msg, Tx, uetr

NOW = dt.datetime(2025, 6, 2, 10, 0, 30, 123456, tzinfo=dt.UTC)
U1 = uuid.UUID(uetr(1))


def report(*transactions: TransactionStatus, **changes: Any) -> StatusReport:
    fields: dict[str, Any] = {
        "message_id": "STS-0001",
        "created_at": NOW,
        "original_message_id": "MSG-0001",
        "original_message_name": "pacs.008.001.08",
        "transactions": transactions or (TransactionStatus("ACSC", U1, "E2E-1"),),
        "instructing_agent": "SETLGB2L",
        "instructed_agent": "BANKUS33",
    }
    return StatusReport(**{**fields, **changes})


def texts(xml: bytes, local: str) -> list[str]:
    root = etree.fromstring(xml)
    return [e.text or "" for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == local]


# --- pacs.002 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", sorted(TX_STATUS_CODES))
def test_pacs002_every_tracker_status_renders_valid(status: str) -> None:
    reason = "AM04" if status in ("RJCT", "PDNG") else None
    xml = render_pacs002(report(TransactionStatus(status, U1, "E2E-1", reason_code=reason)))  # type: ignore[arg-type]
    message = read_iso_message(xml)  # re-validates against the XSD
    assert str(message.message_id) == PACS002_VERSION and message.header is None
    assert texts(xml, "TxSts") == [TX_STATUS_CODES[status]]
    assert texts(xml, "Cd") == ([reason] if reason else [])


def test_pacs002_one_entry_per_transaction_from_a_parsed_message(directory: StaticBicDirectory) -> None:
    parsed = parse_payment_message(
        Msg(txs=(Tx(e2e="A", uetr=uetr(1)), Tx(e2e="B", uetr=uetr(2), ccy="XAU", amount="1"), Tx(e2e="C", uetr=None))).bytes(),
        directory,
    )
    statuses = statuses_for(parsed)
    xml = render_pacs002(report(*statuses, original_message_name=parsed.version), with_header=True)
    assert texts(xml, "TxSts") == ["RCVD", "RJCT", "RCVD"]
    assert texts(xml, "OrgnlEndToEndId") == ["A", "B", "C"]
    assert texts(xml, "OrgnlUETR") == [uetr(1), uetr(2), str(parsed.transactions[2].uetr)]  # generated UETR reported back
    assert texts(xml, "Cd") == ["AM03"]
    assert texts(xml, "AddtlInf")[0].startswith("currency XAU")
    message = read_iso_message(xml)
    assert message.header is not None and message.header.message_definition_id == PACS002_VERSION
    assert message.header.from_bic == "SETLGB2LXXX" and message.header.to_bic == "BANKUS33XXX"


def test_pacs002_long_reason_text_is_shortened_to_max105() -> None:
    xml = render_pacs002(report(TransactionStatus("RJCT", U1, reason_code="FF01", additional_info="x " * 200)))
    assert len(texts(xml, "AddtlInf")[0]) == 105


@pytest.mark.parametrize(
    ("tx", "changes", "fragment"),
    [
        (TransactionStatus("RJCT", U1), {}, "needs a reason code"),
        (TransactionStatus("DONE", U1), {}, "no pacs.002 code"),  # type: ignore[arg-type]
        (TransactionStatus("RJCT", U1, reason_code="toolong"), {}, "4-character"),
        (TransactionStatus("ACSC", U1, end_to_end_id="x" * 36), {}, "EndToEndId"),
        (TransactionStatus("ACSC", U1, end_to_end_id="bad\x01"), {}, "XML-compatible"),
        (TransactionStatus("ACSC", U1), {"created_at": dt.datetime(2025, 6, 2)}, "timezone-aware"),
        (TransactionStatus("ACSC", U1), {"message_id": ""}, "MsgId"),
    ],
)
def test_pacs002_render_errors_are_render_errors(tx: TransactionStatus, changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RenderError, match=fragment):
        render_pacs002(report(tx, **changes))


def test_pacs002_needs_transactions_and_header_agents() -> None:
    with pytest.raises(RenderError):
        render_pacs002(report(transactions=()))
    with pytest.raises(RenderError, match="header needs"):
        render_pacs002(report(instructed_agent=None), with_header=True)
    assert issubclass(RenderError, GatewayError)


# --- camt.053 ------------------------------------------------------------------------------------
def statement(**changes: Any) -> Statement:
    """A consistent statement; the closing balance follows the entries unless given."""
    fields: dict[str, Any] = {
        "message_id": "STMT-0001",
        "statement_id": "BANKUS33XXX-USD-42",
        "created_at": NOW,
        "account_bic": "BANKUS33",
        "currency": "USD",
        "opening_balance": Decimal(1000),
        "period_start": NOW - dt.timedelta(days=1),
        "period_end": NOW,
        "entries": (
            StatementEntry(Decimal("250.50"), True, NOW, U1, "E2E-1", "blk:41:0", additional_info="tx 0xabc"),
            StatementEntry(Decimal(10), False, NOW, uuid.UUID(uetr(2)), "E2E-2", value_date=dt.date(2025, 6, 3)),
            StatementEntry(Decimal("0.01"), False, NOW, bank_transaction_code=("CAMT", "ACCB", "OTHR")),
        ),
        "as_of_block": 42,
    }
    fields.update(changes)
    if "closing_balance" not in changes:
        moved = sum((e.amount if e.credit else -e.amount for e in fields["entries"]), Decimal(0))
        fields["closing_balance"] = fields["opening_balance"] + moved
    return Statement(**fields)


def test_camt053_renders_valid_statement() -> None:
    xml = render_camt053(statement())
    message = read_iso_message(xml)
    assert str(message.message_id) == CAMT053_VERSION
    ids = [t.strip() for t in texts(xml, "Id") if t.strip()]
    assert ids == ["BANKUS33XXX-USD-42", "BANKUS33XXX"]
    assert texts(xml, "AnyBIC") == ["BANKUS33XXX"]
    assert texts(xml, "Amt") == ["1000.00", "1240.49", "250.50", "250.50", "10.00", "10.00", "0.01"]
    assert texts(xml, "CdtDbtInd") == ["CRDT", "CRDT", "CRDT", "CRDT", "DBIT", "DBIT", "DBIT"]
    assert texts(xml, "UETR") == [uetr(1), uetr(2)]
    assert texts(xml, "AddtlStmtInf") == ["as_of_block=42"]
    assert texts(xml, "SubFmlyCd") == ["XBCT", "XBCT", "OTHR"]
    assert "2025-06-03" in texts(xml, "Dt")


def test_camt053_balances_must_add_up() -> None:
    with pytest.raises(RenderError, match="does not add up"):
        render_camt053(statement(closing_balance=Decimal("1240.50")))  # entries make 1240.49
    assert render_camt053(statement(closing_balance=Decimal(1)), check_balances=False)


def test_camt053_negative_balance_is_dbit_and_jpy_has_no_decimals() -> None:
    xml = render_camt053(statement(currency="JPY", opening_balance=Decimal(-5),
                                   entries=(StatementEntry(Decimal(1500), True, NOW, U1),)))
    assert texts(xml, "Amt")[:2] == ["5", "1495"]
    assert texts(xml, "CdtDbtInd")[:2] == ["DBIT", "CRDT"]


def test_camt053_with_header_and_empty_statement() -> None:
    xml = render_camt053(statement(entries=()), with_header=True, sender_bic="SETLGB2L")
    message = read_iso_message(xml)
    assert message.header is not None and message.header.to_bic == "BANKUS33XXX"
    with pytest.raises(RenderError, match="sender_bic"):
        render_camt053(statement(), with_header=True)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"currency": "XAU"}, "cannot render"),
        ({"account_bic": "nope"}, "cannot render"),
        ({"entries": (StatementEntry(Decimal("1.001"), True, NOW),)}, "decimal places"),
        ({"entries": (StatementEntry(Decimal(-1), True, NOW),)}, "greater than zero"),
        ({"entries": (StatementEntry(Decimal(1), True, dt.datetime(2025, 6, 2)),)}, "timezone-aware"),
        ({"statement_id": "x" * 36}, "Id"),
        # 19 significant digits: a valid ledger amount, but over the ISO totalDigits of 18
        ({"opening_balance": Decimal("11111111111111111.11"), "entries": ()}, "totalDigits"),
    ],
)
def test_camt053_render_errors(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RenderError, match=fragment):
        render_camt053(statement(**changes))


def test_camt053_shape_matches_the_cbpr_sample(samples_dir: Any) -> None:
    sample = etree.parse(str(samples_dir / "wso2bal_CBPRplus_c.105.1.1_camt.053-BtoA.xml")).getroot()
    ours = etree.fromstring(render_camt053(statement(), with_header=True, sender_bic="SETLGB2L"))

    def paths(root: etree._Element) -> set[str]:
        out = set()
        for element in root.iter():
            if isinstance(element.tag, str):
                chain = [etree.QName(element).localname] + [etree.QName(a).localname for a in element.iterancestors()]
                out.add("/".join(reversed(chain)))
        return out

    shared = {
        "Envelope/Document/BkToCstmrStmt/GrpHdr/MsgId",
        "Envelope/Document/BkToCstmrStmt/Stmt/Acct/Id/Othr/Id",
        "Envelope/Document/BkToCstmrStmt/Stmt/Acct/Ccy",
        "Envelope/Document/BkToCstmrStmt/Stmt/Bal/Tp/CdOrPrtry/Cd",
        "Envelope/Document/BkToCstmrStmt/Stmt/Ntry/BkTxCd/Domn/Fmly/SubFmlyCd",
        "Envelope/Document/BkToCstmrStmt/Stmt/Ntry/NtryDtls/TxDtls/Refs/UETR",
        "Envelope/Document/BkToCstmrStmt/Stmt/Ntry/NtryDtls/TxDtls/Refs/EndToEndId",
        "Envelope/AppHdr/MsgDefIdr",
    }
    assert shared <= paths(sample) and shared <= paths(ours)


def test_status_report_for_answers_the_sender(directory: StaticBicDirectory) -> None:
    from chain_gateway.instructions import status_report_for

    parsed = parse_payment_message(
        Msg(txs=(Tx(e2e="A", uetr=uetr(1)), Tx(e2e="B", uetr=uetr(1))), header="head.001.001.02").bytes(), directory
    )
    report_ = status_report_for(parsed, message_id="STS-9", created_at=NOW, instructing_agent="SETLGB2L")
    assert report_.instructed_agent == "BANKUS33XXX" and report_.original_message_name == "pacs.008.001.08"
    xml = render_pacs002(report_, with_header=True)
    assert texts(xml, "TxSts") == ["RCVD", "RJCT"] and texts(xml, "Cd") == ["DUPL"]
    assert texts(xml, "OrgnlCreDtTm") == ["2025-06-02T10:00:00Z"] * 2
    assert texts(xml, "BizMsgIdr") == ["STS-9"]


def test_camt053_long_reference_moves_to_additional_info() -> None:
    long_reference = "0x" + "ab" * 32  # a bytes32 reference: 66 characters, over Max35Text
    xml = render_camt053(statement(entries=(
        StatementEntry(Decimal(5), True, NOW, reference=long_reference, additional_info="funding"),
        StatementEntry(Decimal(1), True, NOW, reference="short-ref"),
    )))
    assert texts(xml, "AcctSvcrRef") == ["short-ref"]
    assert texts(xml, "AddtlNtryInf") == [f"reference {long_reference}; funding"]
