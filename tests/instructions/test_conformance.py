"""Conformance: the expected outcome of every file in shared/conformance/iso20022/samples.

Every sample is posted as a payment message (``parse_payment_message``). Outcome classes:

- ``Parsed``: pacs.008 / pacs.009 that settle: agents, amount, currency, UETR checked.
- ``Business``: parsed, but its transaction is rejected with an ISO reason (XAU -> AM03).
- ``Invalid``: the whole message is refused with InvalidMessage (FF01); ``kind`` says why:
  ``schema`` (XSD), ``header`` (AppHdr MsgDefIdr does not match the Document),
  ``type`` (not a payment message: pacs.002, camt.05x), ``version`` (pacs.008.001.07).

Some CBPR+ samples pair a newer Document (pacs.008.001.12, pacs.009.001.11,
pacs.002.001.14) with an AppHdr that still says .08/.10. The header names the same message,
one version behind: it is accepted (and recorded on the parsed message); a header naming
another message (``WRONG.000.00``) or a version ahead of its Document is refused.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
from lxml import etree

from chain_gateway.errors import GatewayError, InvalidMessage
from chain_gateway.instructions import (
    PACS002_VERSION,
    StaticBicDirectory,
    StatusReport,
    TransactionStatus,
    parse_payment_message,
    render_pacs002,
)
from chain_gateway.instructions.pacs import ParsedMessage

from .conftest import MEMBER_IDS, TEST_BICS


@dataclass(frozen=True)
class Tx:
    debtor: str
    creditor: str
    currency: str
    amount: str
    uetr: str | None  # None: generated
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Parsed:
    version: str
    tx: Tx


@dataclass(frozen=True)
class Business:
    version: str
    reason: str


@dataclass(frozen=True)
class Invalid:
    kind: Literal["schema", "header", "type", "version"]
    detail: tuple[str, ...] = ()
    document_only: Parsed | Invalid | None = None


Outcome = Parsed | Business | Invalid
_HEADER = "header does not match its document"

EXPECTED: dict[str, Outcome] = {
    # --- pacs.008 that settle ----------------------------------------------------------
    "cbprur_pacs_008_stp_2025_valid.xml": Parsed(
        "pacs.008.001.08", Tx("BANKUS33XXX", "BANKGB22XXX", "USD", "1000.00", None)
    ),
    "cbprur_y2025_pacs.008.max.xml": Parsed(
        "pacs.008.001.08",
        Tx("ABCDGBEFXXX", "PQRSUSNOXXX", "EUR", "1000.00", "00000000-0000-4000-aba0-f03b25f59320",
           {"priority": "urgent", "instructed_amount": Decimal("1000.00"), "exchange_rate": Decimal("1000.00")}),
    ),
    "cbprur_y2025_pacs.008_stp.min.xml": Parsed(
        "pacs.008.001.08",
        Tx("NOPQGBFGXXX", "CDEFUS01XXX", "EUR", "1000.00", "00000000-0000-4000-8846-6adcda7c076d"),
    ),
    "fednow_sample-participant-to-fednow-message.xml": Parsed(
        "pacs.008.001.08",
        Tx("FDNAUS33XXX", "FDNCUS33XXX", "USD", "51.74", "8a562c67-ca16-48ba-b074-65581be6f011"),
    ),
    "fedwire_CustomerCreditTransfer_Scenario1_Step1_pacs.008.xml": Parsed(
        "pacs.008.001.08",
        Tx("FWBAUS33XXX", "FWBCUS33XXX", "USD", "510000.74", "8a562c67-ca16-48ba-b074-65581be6f011"),
    ),
    "fedwire_CustomerCreditTransfer_Variation5_pacs.008.xml": Parsed(
        "pacs.008.001.08",
        Tx("FWBZUS33XXX", "FWBYUS33XXX", "USD", "1009858.99", "8a562c67-ca16-48ba-b074-65581be6f011",
           {"instructed_currency": "EUR", "instructed_amount": Decimal("1000000.00"),
            "exchange_rate": Decimal("0.9901")}),
    ),
    "pm4ml_pacs.008.outgoing.valid.xml": Parsed(
        "pacs.008.001.08",
        Tx("LAKCUS33XXX", "EQBLRWRWXXX", "RWF", "20200", None,
           {"remittance_info": "d7d91837-4402-4c8f-9b73-20255b0ec40c"}),
    ),
    "wso2bal_CBPRplus_c.105.1.1_pacs.008_AtoB.xml": Parsed(
        "pacs.008.001.08",
        Tx("CBRLGB2LXXX", "RBOSGBCHXXX", "GBP", "2450", "7a562c67-ca16-48ba-b074-65581be6f001"),
    ),
    "wso2bal_CBPRplus_c.53.5_pacs.008_AtoB.xml": Parsed(
        "pacs.008.001.08",
        Tx("WPACAU2SXXX", "DBSSSGSGXXX", "SGD", "500000", "174c245f-2682-4291-ad67-2a41e530cd27"),
    ),
    # --- pacs.009 that settle ----------------------------------------------------------
    "cbprur_pacs009_fi_transfer_sample.xml": Parsed(
        "pacs.009.001.08",
        Tx("KRMTJP2XXXX", "PLNFSGSXXXX", "JPY", "45000000", "b2c3d4e5-f6a7-4901-bcde-f12345678901"),
    ),
    "cbprur_y2025_pacs.009.max.xml": Parsed(
        "pacs.009.001.08",
        Tx("BCDEGBPQXXX", "QRSTUSMNXXX", "EUR", "1000.00", "00000000-0000-4000-aba0-f0442179de93",
           {"priority": "urgent"}),
    ),
    "cbprur_y2025_pacs.009_cov.max.xml": Parsed(
        "pacs.009.001.08",
        Tx("BCDEGBPQXXX", "QRSTUSMNXXX", "EUR", "1000.00", "00000000-0000-4000-b63a-a43811d3487b"),
    ),
    "fedwire_FICreditTransfer_Scenario1_Step1_pacs.009.xml": Parsed(
        "pacs.009.001.08",
        Tx("FWBZUS33XXX", "FWBYUS33XXX", "USD", "500000000.00", "8a562c67-ca16-48ba-b074-65581be6f055"),
    ),
    "wso2bal_CBPRplus_c.106.2.1.a_pacs.009_BtoC.xml": Parsed(
        "pacs.009.001.08",
        Tx("INGBROBUXXX", "RZBRROBUXXX", "RON", "15", "7a562c67-ca16-48ba-b074-65581be6f002"),
    ),
    # --- business-rule breaches: per-transaction rejections -----------------------------
    "cbprur_RULEINVALID_pacs008_credit_transfer_sample__violates_pacs.008-R41_commodity_currency_XAU.xml":
        Business("pacs.008.001.08", "AM03"),
    "cbprur_RULEINVALID_pacs009_fi_transfer_sample__violates_pacs.009-R20_commodity_currency_XAU.xml":
        Business("pacs.009.001.08", "AM03"),
    # --- header / document mismatch (a header may lag its Document's version within the
    # same message, as the newer wso2bal CBPR+ samples do, but not name another message or
    # a later version) ---------------------------------------------------------------------
    "cbprur_RULEINVALID_pacs002_status_report_sample__violates_pacs.002-R5_msgdefidr_mismatch.xml":
        Invalid("header", (_HEADER, "WRONG.000.00")),
    "cbprur_INVALID_pacs_002_2025_invalid.xml": Invalid("type", ("pacs.002",)),
    "cbprur_INVALID_pacs_009_2025_invalid.xml": Invalid(
        "header", (_HEADER, "pacs.009.001.09"),
        document_only=Invalid("schema", ("XSD", "PrvsInstgAgt1")),
    ),
    "wso2bal_CBPRplus_p.2.1.2_pacs.008-AtoB.xml": Parsed("pacs.008.001.12", Tx("CHASGB2LXXX", "CHASUS33XXX", "USD", "136500",
                                                   "174c245f-2682-4291-ad67-2a41e530cd27")),
    "wso2bal_CBPRplus_p.2.3.1.b_pacs.008_AtoD.xml": Parsed("pacs.008.001.12", Tx("CLYDGB2SXXX", "BSCHGB2LXXX", "DKK", "591636",
                                                   "7a562c67-ca16-48ba-b074-65581be6f001")),
    "wso2bal_HVPS_c.29.1.1_pacs.008_BtoC_MI.xml": Parsed("pacs.008.001.12", Tx("INGBROBUXXX", "RZBRROBUXXX", "RON", "591636",
                                                   "174c245f-2682-4291-ad67-2a41e530cd27")),
    "wso2bal_CBPRplus_p.2.3.1.b_pacs.009.cov-AtoB.xml": Parsed("pacs.009.001.11", Tx("CLYDGB2SXXX", "BOFSGB2LXXX", "DKK", "591636",
                                                   "7a562c67-ca16-48ba-b074-65581be6f001")),
    "wso2bal_CBPRplus_c.56.4.1_pacs.009.adv_BtoE.xml": Parsed("pacs.009.001.11", Tx("TDOMUS33XXX", "NWBKGB2LXXX", "CAD", "2565972",
                                                   "7a562c67-ca16-48ba-b074-65581be6f001")),
    "wso2bal_CBPRplus_p.2.1.2_pacs.002-DtoC.xml": Invalid("type", ("pacs.002",)),
    # --- schema-invalid: the whole message is refused -----------------------------------
    "cbprur_INVALID_pacs008_invalid.xml": Invalid("schema", ("XSD", "InstrForCdtrAgt", "not expected")),
    "cbprur_INVALID_pacs_008_stp_2025_invalid.xml": Invalid("schema", ("XSD", "BICFI", "WRONGUS33XXX")),
    "pm4ml_INVALID_pacs.008.outgoing.invalid.xml": Invalid("schema", ("pacs.008.001.08 XSD", "MsgId", "36")),
    "pm4ml_INVALID_pacs.008.001.09.request.xml": Invalid("schema", ("pacs.008.001.09 XSD", "MsgId", "36")),
    # --- not payment messages -----------------------------------------------------------
    "cbprur_pacs002_status_report_sample.xml": Invalid("type", ("pacs.002",)),
    "fednow_fednow-sample-message-pacs002.xml": Invalid("type", ("pacs.002",)),
    "fedwire_CustomerCreditTransfer_Scenario2_Step2_pacs.002.xml": Invalid("type", ("pacs.002",)),
    "fedwire_FICreditTransfer_Scenario1_Step2_pacs.002.xml": Invalid("type", ("pacs.002",)),
    "pm4ml_pacs.002.outgoing.valid.rejected.xml": Invalid("type", ("pacs.002",)),
    "wso2bal_CBPRplus_c.56.4.1_pacs.002_CtoB.xml": Invalid("type", ("pacs.002",)),
    "wso2bal_CBPRplus_c.105.1.1_camt.053-BtoA.xml": Invalid("type", ("camt.053",)),
    "moov_FI_camt_053_sample.xml": Invalid("type", ("camt.053",)),
    "cbprur_y2025_camt.054.max.xml": Invalid("type", ("camt.054",)),
    "moov_FI_camt_054_sample.xml": Invalid("type", ("camt.054",)),
    # --- older versions: below the 001.08 floor -----------------------------------------
    "prowide_pacs.008.001.07.xml": Invalid("version", ("pacs.008.001.07", "pacs.008.001.08")),
}

_KIND_MARKERS = {
    "schema": "is not valid against the",
    "header": _HEADER,
    "type": "unsupported message type",
    "version": "is not a supported version",
}


def _agents(outcomes: dict[str, Outcome]) -> set[str]:
    found: set[str] = set()
    for outcome in outcomes.values():
        for item in (outcome, getattr(outcome, "document_only", None)):
            if isinstance(item, Parsed):
                found |= {item.tx.debtor, item.tx.creditor}
    return found - set(MEMBER_IDS.values())


@pytest.fixture(scope="module")
def corpus_directory() -> StaticBicDirectory:
    """Every agent of the samples that should settle, plus the ABA member ids."""
    return StaticBicDirectory.of(set(TEST_BICS) | _agents(EXPECTED), MEMBER_IDS)


def _document_only(path: Path) -> bytes:
    """The sample's Document element alone, namespace declarations included."""
    root = etree.parse(str(path)).getroot()
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "Document":
            return etree.tostring(element)
    raise AssertionError(f"no Document in {path.name}")


def _check(outcome: Outcome, data: bytes, directory: StaticBicDirectory, name: str) -> None:
    if isinstance(outcome, Invalid):
        with pytest.raises(InvalidMessage) as caught:
            parse_payment_message(data, directory)
        error = caught.value
        assert error.reason_code == "FF01", name
        assert _KIND_MARKERS[outcome.kind] in error.detail, (name, error.detail)
        for fragment in outcome.detail:
            assert fragment in error.detail, (name, fragment, error.detail)
        return
    message = parse_payment_message(data, directory)
    assert message.version == outcome.version, name
    assert len(message.transactions) == 1, name
    tx = message.transactions[0]
    if isinstance(outcome, Business):
        assert tx.instruction is None and tx.rejection is not None, name
        assert tx.reason_code == outcome.reason, (name, tx.rejection.detail)
        return
    assert tx.rejection is None, (name, tx.rejection)
    instruction = tx.instruction
    assert instruction is not None
    expected = outcome.tx
    assert (instruction.debtor_agent, instruction.creditor_agent) == (expected.debtor, expected.creditor), name
    assert instruction.currency == expected.currency, name
    assert instruction.amount == Decimal(expected.amount), name
    assert message.message_type == outcome.version[:8] == instruction.message_type, name
    if expected.uetr is None:
        assert tx.uetr_generated and instruction.uetr.version == 4, name
    else:
        assert not tx.uetr_generated and instruction.uetr == uuid.UUID(expected.uetr), name
    for key, value in expected.extra.items():
        assert getattr(instruction, key) == value, (name, key)
    assert len(instruction.instruction_hash()) == 32


def test_conformance_table_covers_every_sample(samples_dir: Path) -> None:
    on_disk = {p.name for p in samples_dir.iterdir() if p.is_file()}
    assert on_disk - EXPECTED.keys() == set(), "new sample files need an expected outcome here"
    assert EXPECTED.keys() - on_disk == set(), "the table names files that are not in the corpus"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_conformance_sample(name: str, samples_dir: Path, corpus_directory: StaticBicDirectory) -> None:
    path = samples_dir / name
    outcome = EXPECTED[name]
    try:
        _check(outcome, path.read_bytes(), corpus_directory, name)
        if isinstance(outcome, Invalid) and outcome.document_only is not None:
            _check(outcome.document_only, _document_only(path), corpus_directory, name + " (Document only)")
    except GatewayError as error:  # an unexpected GatewayError: show it whole
        pytest.fail(f"{name}: unexpected {type(error).__name__} {error.reason_code}: {error.detail}")


def test_conformance_sample_agents_must_be_registered(samples_dir: Path) -> None:
    """With an empty registry every settling sample is rejected per transaction with RC01."""
    empty = StaticBicDirectory()
    for name, outcome in EXPECTED.items():
        if isinstance(outcome, Parsed):
            message = parse_payment_message((samples_dir / name).read_bytes(), empty)
            assert [t.reason_code for t in message.transactions] == ["RC01"], name


def test_conformance_outcome_summary(samples_dir: Path) -> None:
    """The corpus splits into the classes the module docstring describes."""
    counts: dict[str, int] = {}
    for outcome in EXPECTED.values():
        key = type(outcome).__name__ + (f":{outcome.kind}" if isinstance(outcome, Invalid) else "")
        counts[key] = counts.get(key, 0) + 1
    assert counts == {
        "Parsed": 19,
        "Business": 2,
        "Invalid:header": 2,
        "Invalid:schema": 4,
        "Invalid:type": 12,
        "Invalid:version": 1,
    }
    assert sum(counts.values()) == 40


# --- pacs.002: our status report has the samples' shape --------------------------------
def _paths(element: etree._Element, prefix: str = "") -> set[str]:
    path = f"{prefix}/{etree.QName(element).localname}"
    found = {path}
    for child in element:
        if isinstance(child.tag, str):
            found |= _paths(child, path)
    return found


def _sample_parts(path: Path) -> tuple[etree._Element | None, etree._Element, str]:
    root = etree.parse(str(path)).getroot()
    header = document = None
    for element in root.iter():
        if isinstance(element.tag, str):
            local = etree.QName(element).localname
            if local == "AppHdr" and header is None:
                header = element
            if local == "Document" and document is None:
                document = element
    assert document is not None
    return header, document, etree.QName(root).localname


def _valid_pacs002_samples(samples_dir: Path) -> list[Path]:
    return [
        samples_dir / name
        for name in sorted(EXPECTED)
        if "pacs002" in name.replace(".", "").replace("_", "") and "_INVALID_" not in name
    ]


def _our_report(with_header: bool) -> bytes:
    import datetime as dt

    now = dt.datetime(2025, 6, 2, 10, 0, tzinfo=dt.UTC)
    report = StatusReport(
        message_id="STS-0001",
        created_at=now,
        original_message_id="MSG-0001",
        original_message_name="pacs.008.001.08",
        original_created_at=now,
        instructing_agent="SETLGB2L",
        instructed_agent="BANKUS33",
        transactions=[
            TransactionStatus("ACSC", uuid.UUID("6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c"), "E2E-1", "INSTR-1", "TX-1"),
            TransactionStatus("RJCT", uuid.UUID("6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2d"), "E2E-2",
                              reason_code="AM03", additional_info="currency XAU cannot be settled"),
        ],
    )
    return render_pacs002(report, with_header=with_header)


def test_pacs002_render_has_the_samples_shape(samples_dir: Path) -> None:
    samples = _valid_pacs002_samples(samples_dir)
    assert len(samples) == 8
    document_paths = [_paths(_sample_parts(p)[1]) for p in samples]
    header_paths = [_paths(h) for h in (_sample_parts(p)[0] for p in samples) if h is not None]
    ours_root = etree.fromstring(_our_report(with_header=True))
    ours_header, ours_document = ours_root[0], ours_root[1]
    ours = _paths(ours_document)
    # Every path that all samples share, we have; every path we have, some sample has.
    every_sample = set.intersection(*document_paths)
    some_sample: set[str] = set().union(*document_paths)
    assert every_sample <= ours
    assert ours <= some_sample, ours - some_sample
    assert set.intersection(*header_paths) <= _paths(ours_header)
    assert _paths(ours_header) <= set().union(*header_paths)
    # The major paths the CBPR+ samples carry, one by one.
    for major in (
        "/Document/FIToFIPmtStsRpt/GrpHdr/MsgId",
        "/Document/FIToFIPmtStsRpt/GrpHdr/CreDtTm",
        "/Document/FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId",
        "/Document/FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgNmId",
        "/Document/FIToFIPmtStsRpt/TxInfAndSts/OrgnlEndToEndId",
        "/Document/FIToFIPmtStsRpt/TxInfAndSts/OrgnlUETR",
        "/Document/FIToFIPmtStsRpt/TxInfAndSts/TxSts",
        "/Document/FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd",
        "/Document/FIToFIPmtStsRpt/TxInfAndSts/InstgAgt/FinInstnId/BICFI",
    ):
        assert major in ours, major
    # Roots as in the samples: SWIFT Envelope with a header, a bare Document without.
    sample_roots = {_sample_parts(p)[2] for p in samples}
    assert etree.QName(ours_root).localname in sample_roots
    assert etree.QName(etree.fromstring(_our_report(with_header=False))).localname in sample_roots
    assert etree.QName(ours_document).namespace == f"urn:iso:std:iso:20022:tech:xsd:{PACS002_VERSION}"


def test_pacs002_samples_read_back_as_our_own_report_would(samples_dir: Path) -> None:
    """Our report is read by the same reader the samples pass (and is refused as a payment)."""
    from chain_gateway.instructions import read_iso_message

    mine = read_iso_message(_our_report(with_header=True))
    assert str(mine.message_id) == PACS002_VERSION and mine.header is not None
    assert mine.header.message_definition_id == PACS002_VERSION
    with pytest.raises(InvalidMessage, match="unsupported message type pacs.002"):
        parse_payment_message(_our_report(with_header=True), StaticBicDirectory())


def test_parsed_message_type_is_payment(samples_dir: Path, corpus_directory: StaticBicDirectory) -> None:
    message = parse_payment_message(
        (samples_dir / "cbprur_pacs009_fi_transfer_sample.xml").read_bytes(), corpus_directory
    )
    assert isinstance(message, ParsedMessage)
    assert message.header is not None and message.header.business_service == "swift.cbprplus.02"
    assert message.message_id == "P009-20260413-6201"
    instruction = message.instructions()[0]
    assert instruction.debtor is not None and instruction.debtor.bic == "KRMTJP2XXXX"
    assert instruction.amount_minor() == 45_000_000  # JPY has no minor unit
