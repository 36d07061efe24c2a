"""pacs.008 / pacs.009 parsing: several transactions, every supported version, the settlement leg."""
from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from lxml import etree

from chain_gateway.errors import InvalidMessage
from chain_gateway.instructions import (
    SUPPORTED_PAYMENT_MESSAGES,
    StaticBicDirectory,
    instruction_from_request,
    parse_payment_message,
    parse_payment_request,
    read_iso_message,
)
from chain_gateway.instructions.schemas import shipped_message_ids

from .isobuild import Agent, Msg, Tx, uetr

VERSIONS = [("pacs.008", "08"), ("pacs.008", "09"), ("pacs.008", "12"), ("pacs.009", "08"), ("pacs.009", "11")]
HEADERS = [None, "head.001.001.01", "head.001.001.02", "head.001.001.04"]


def three_transactions(kind: str) -> tuple[Tx, ...]:
    return (
        Tx(e2e="E2E-A", uetr=uetr(1), amount="10.50", ustrd=("Invoice 1", "line 2"), priority="URGT", instr_id="I-A", tx_id="T-A"),
        Tx(e2e="E2E-B", uetr=None, ccy="JPY", amount="1500", instd=Agent("DEUTDEFF")),
        Tx(e2e="E2E-C", uetr=uetr(3), ccy="BHD", amount="0.125", instg=None, instd=None,
           dbtr_agt=Agent(member_id="021307481"), cdtr_agt=Agent("BNPAFRPP"),
           dbtr_fi=Agent(member_id="021307481") if kind == "pacs.009" else Agent("BANKUS33XXX"),
           cdtr_fi=Agent("BNPAFRPP") if kind == "pacs.009" else Agent("BANKGB22XXX")),
    )


def test_builder_outputs_are_schema_valid() -> None:
    for kind, version in VERSIONS:
        for header in HEADERS:
            message = Msg(kind=kind, version=version, txs=three_transactions(kind), header=header,  # type: ignore[arg-type]
                          ctrl_sum="1511.625", group_instg=Agent("BANKUS33"))
            read_iso_message(message.bytes())  # raises on any XSD error


def test_supported_messages_all_ship_their_xsd() -> None:
    assert SUPPORTED_PAYMENT_MESSAGES <= shipped_message_ids()
    assert {"pacs.002.001.10", "camt.053.001.08", "head.001.001.02"} <= shipped_message_ids()


@pytest.mark.parametrize(("kind", "version"), VERSIONS)
@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("wrapper", ["Envelope", "RequestPayload"])
def test_parse_several_transactions_every_version(
    kind: str, version: str, header: str | None, wrapper: str, directory: StaticBicDirectory
) -> None:
    message = Msg(kind=kind, version=version, txs=three_transactions(kind), header=header, wrapper=wrapper)  # type: ignore[arg-type]
    fixed = uuid.UUID("99999999-9999-4999-8999-999999999999")
    parsed = parse_payment_message(message.bytes(), directory, uetr_factory=lambda: fixed)
    assert (parsed.message_type, parsed.version, parsed.message_id) == (kind, f"{kind}.001.{version}", "MSG-0001")
    assert (parsed.header is not None) == (header is not None)
    a, b, _c = parsed.transactions
    assert [t.index for t in parsed.transactions] == [0, 1, 2]
    assert all(t.accepted for t in parsed.transactions), [t.rejection for t in parsed.transactions]
    ia, ib, ic = parsed.instructions()
    # A: InstgAgt -> InstdAgt, BIC8 normalised, remittance lines joined, URGT -> urgent
    assert (ia.debtor_agent, ia.creditor_agent, ia.currency, ia.amount) == ("BANKUS33XXX", "BANKGB22XXX", "USD", Decimal("10.50"))
    assert ia.uetr == uuid.UUID(uetr(1)) and not a.uetr_generated
    assert ia.remittance_info == "Invoice 1\nline 2" and ia.priority == "urgent"
    assert (a.instruction_id, a.transaction_id, a.end_to_end_id) == ("I-A", "T-A", "E2E-A")
    assert ia.value_date is not None and ia.value_date.isoformat() == "2025-06-02"
    assert ia.message_type == kind and ia.message_id == "MSG-0001"
    # B: missing UETR generated and flagged; JPY without decimals
    assert b.uetr_generated and ib.uetr == fixed == b.uetr
    assert (ib.creditor_agent, ib.amount_minor(), ib.priority) == ("DEUTDEFFXXX", 1500, "normal")
    # C: no InstgAgt/InstdAgt: debtor by clearing member id (DbtrAgt or the pacs.009 Dbtr FI)
    assert (ic.debtor_agent, ic.creditor_agent, ic.amount_minor()) == ("FWBZUS33XXX", "BNPAFRPPXXX", 125)
    # Parties recorded: customer parties in pacs.008, institutions in pacs.009
    if kind == "pacs.008":
        assert ia.debtor is not None and (ia.debtor.name, ia.debtor.country, ia.debtor.account) == ("Acme Trading", "US", "11223344")
        assert ia.creditor is not None and ia.creditor.account == "GB29NWBK60161331926819"
    else:
        assert ia.debtor is not None and ia.debtor.bic == "BANKUS33XXX"
        assert ia.creditor is not None and ia.creditor.bic == "BANKGB22XXX"


def test_business_rejections_are_per_transaction(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(
        Tx(e2e="OK-1", uetr=uetr(1)),
        Tx(e2e="XAU", uetr=uetr(2), ccy="XAU", amount="5"),
        Tx(e2e="XDR", uetr=uetr(3), ccy="XDR", amount="5"),
        Tx(e2e="JPY-DEC", uetr=uetr(4), ccy="JPY", amount="10.5"),
        Tx(e2e="USD-3DP", uetr=uetr(5), amount="10.005"),
        Tx(e2e="ZERO", uetr=uetr(6), amount="0"),
        Tx(e2e="UNKNOWN-BIC", uetr=uetr(7), instd=Agent("BARCGB22")),
        Tx(e2e="UNKNOWN-MEMBER", uetr=uetr(8), instg=Agent(member_id="999999999")),
        Tx(e2e="BAD-COUNTRY", uetr=uetr(9), instd=Agent("BANKQQ22")),
        Tx(e2e="PARTY-COUNTRY", uetr=uetr(10), cdtr_country="QQ"),
        Tx(e2e="OK-2", uetr=uetr(11), ccy="EUR", amount="99.99"),
    ))
    parsed = parse_payment_message(message.bytes(), directory)
    codes = {t.end_to_end_id: t.reason_code for t in parsed.transactions}
    assert codes == {
        "OK-1": None, "XAU": "AM03", "XDR": "AM03", "JPY-DEC": "AM12", "USD-3DP": "AM12", "ZERO": "AM12",
        "UNKNOWN-BIC": "RC01", "UNKNOWN-MEMBER": "RC01", "BAD-COUNTRY": "RC01", "PARTY-COUNTRY": "FF01", "OK-2": None,
    }
    assert [i.end_to_end_id for i in parsed.instructions()] == ["OK-1", "OK-2"]
    assert next(t.end_to_end_id for t in parsed.rejections()) == "XAU"
    details = {t.end_to_end_id: t.rejection.detail for t in parsed.rejections() if t.rejection}
    assert "creditor_agent (InstdAgt) BARCGB22XXX is not a registered participant" in details["UNKNOWN-BIC"]
    assert "member id '999999999'" in details["UNKNOWN-MEMBER"]
    assert details["PARTY-COUNTRY"].startswith("Cdtr:")


def test_unresolvable_instg_agent_is_not_rescued_by_dbtr_agt(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(Tx(uetr=uetr(1), instg=Agent("BARCGB22"), dbtr_agt=Agent("BANKUS33")),))
    assert parse_payment_message(message.bytes(), directory).transactions[0].reason_code == "RC01"


def test_group_header_agents_are_the_settlement_leg(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(Tx(uetr=uetr(1), instg=None, instd=None, dbtr_agt=Agent("DEUTDEFF"), cdtr_agt=Agent("BNPAFRPP")),),
                  group_instg=Agent("BANKUS33"), group_instd=Agent("BANKGB22"))
    instruction = parse_payment_message(message.bytes(), directory).instructions()[0]
    assert (instruction.debtor_agent, instruction.creditor_agent) == ("BANKUS33XXX", "BANKGB22XXX")


def test_dbtr_agt_fallback_when_no_instructing_agent(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(Tx(uetr=uetr(1), instg=None, instd=None, dbtr_agt=Agent("DEUTDEFF"), cdtr_agt=Agent("BNPAFRPP")),))
    instruction = parse_payment_message(message.bytes(), directory).instructions()[0]
    assert (instruction.debtor_agent, instruction.creditor_agent) == ("DEUTDEFFXXX", "BNPAFRPPXXX")


def test_pacs009_without_any_agent_uses_the_institutions(directory: StaticBicDirectory) -> None:
    message = Msg(kind="pacs.009", txs=(Tx(uetr=uetr(1), instg=None, instd=None,
                                            dbtr_fi=Agent("DEUTDEFF"), cdtr_fi=Agent("BNPAFRPP")),))
    instruction = parse_payment_message(message.bytes(), directory).instructions()[0]
    assert (instruction.debtor_agent, instruction.creditor_agent) == ("DEUTDEFFXXX", "BNPAFRPPXXX")


def test_agent_without_bic_or_member_id_is_rc01(directory: StaticBicDirectory) -> None:
    raw = Msg(txs=(Tx(uetr=uetr(1)),)).bytes().replace(
        b"<InstgAgt><FinInstnId><BICFI>BANKUS33XXX</BICFI></FinInstnId></InstgAgt>",
        b"<InstgAgt><FinInstnId><LEI>529900T8BM49AURSDO55</LEI></FinInstnId></InstgAgt>",
    )
    tx = parse_payment_message(raw, directory).transactions[0]
    assert tx.reason_code == "RC01" and tx.rejection is not None and "neither BICFI nor ClrSysMmbId" in tx.rejection.detail


def test_caller_must_be_the_debited_participant(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(Tx(e2e="MINE", uetr=uetr(1)), Tx(e2e="THEIRS", uetr=uetr(2), instg=Agent("DEUTDEFF"))))
    parsed = parse_payment_message(message.bytes(), directory, caller_bic="BANKUS33")
    assert [t.reason_code for t in parsed.transactions] == [None, "AG01"]
    assert parse_payment_message(message.bytes(), directory).transactions[1].accepted


def test_recorded_fx_fields_and_queue_flag(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(Tx(uetr=uetr(1), amount="1009858.99", instructed=("EUR", "1000000.00"), rate="0.9901"),))
    instruction = parse_payment_message(message.bytes(), directory, queue_if_insufficient=True).instructions()[0]
    assert (instruction.instructed_currency, instruction.instructed_amount, instruction.exchange_rate) == (
        "EUR", Decimal("1000000.00"), Decimal("0.9901"))
    assert instruction.amount_minor() == 100985899  # the settled amount is IntrBkSttlmAmt
    assert instruction.queue_if_insufficient and instruction.order_flags() == 1
    assert instruction.canonical_dict()["instructed_amount"] == "1000000"


def test_priority_mapping(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(Tx(e2e="U", uetr=uetr(1), priority="URGT"), Tx(e2e="H", uetr=uetr(2), priority="HIGH"),
                       Tx(e2e="N", uetr=uetr(3), priority="NORM"), Tx(e2e="D", uetr=uetr(4))))
    priorities = [i.priority for i in parse_payment_message(message.bytes(), directory).instructions()]
    assert priorities == ["urgent", "urgent", "normal", "normal"]


def test_value_date_falls_back_to_group(directory: StaticBicDirectory) -> None:
    raw = Msg(txs=(Tx(uetr=uetr(1), value_date=None),)).bytes().replace(
        b"<SttlmInf>", b"<IntrBkSttlmDt>2025-07-01</IntrBkSttlmDt><SttlmInf>")
    instruction = parse_payment_message(raw, directory).instructions()[0]
    assert instruction.value_date is not None and instruction.value_date.isoformat() == "2025-07-01"


def test_group_totals_that_add_up_are_accepted(directory: StaticBicDirectory) -> None:
    message = Msg(txs=(Tx(uetr=uetr(1), amount="10.00"), Tx(uetr=uetr(2), amount="5.5")),
                  ctrl_sum="15.50", total=("USD", "15.5"))
    assert len(parse_payment_message(message.bytes(), directory).instructions()) == 2


def test_iso_and_json_channels_hash_the_same_payment_equally(directory: StaticBicDirectory) -> None:
    """Idempotency by content works across channels: same fields, same instruction hash."""
    iso = parse_payment_message(
        Msg(txs=(Tx(e2e="E2E-1", uetr=uetr(5), amount="250.00", value_date=None, ustrd=("Invoice 9",),
                    dbtr_country=None, dbtr_account=None, cdtr_country=None, cdtr_iban=None),)).bytes(),
        directory,
    ).instructions()[0]
    request = parse_payment_request(
        b'{"uetr": "%s", "creditor_agent": "BANKGB22", "currency": "USD", "amount": "250",'
        b' "end_to_end_id": "E2E-1", "remittance_info": "Invoice 9",'
        b' "debtor": {"name": "Acme Trading"}, "creditor": {"name": "Globex Ltd"}}' % uetr(5).encode()
    )
    json_instruction = instruction_from_request(request, "BANKUS33")
    assert json_instruction.canonical_dict() == iso.canonical_dict()
    assert json_instruction.instruction_hash() == iso.instruction_hash()


def test_document_nested_in_supplementary_data_is_not_a_second_document(directory: StaticBicDirectory) -> None:
    inner = Msg(txs=(Tx(uetr=uetr(2)),)).document()
    raw = Msg(txs=(Tx(uetr=uetr(1)),)).document().replace(
        "</CdtTrfTxInf></FIToFICstmrCdtTrf>",
        f"<SplmtryData><Envlp>{inner}</Envlp></SplmtryData></CdtTrfTxInf></FIToFICstmrCdtTrf>",
    )
    parsed = parse_payment_message(raw.encode(), directory)
    assert [t.uetr for t in parsed.transactions] == [uuid.UUID(uetr(1))]


def test_schema_error_names_path_and_problem(directory: StaticBicDirectory) -> None:
    raw = Msg(txs=(Tx(uetr=uetr(1)), Tx(uetr=uetr(2), e2e="x" * 36))).bytes()
    with pytest.raises(InvalidMessage) as caught:
        parse_payment_message(raw, directory)
    error = caught.value
    assert "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/PmtId/EndToEndId" in error.detail
    assert "maxLength" in error.detail and "{urn:" not in error.detail
    assert error.fields["errors"][0]["line"] >= 1


def test_schema_invalid_rejects_the_whole_message(directory: StaticBicDirectory) -> None:
    """One schema-invalid transaction: nothing in the message is accepted."""
    raw = Msg(txs=(Tx(uetr=uetr(1)), Tx(uetr=uetr(2), amount="1.1234567"))).bytes()
    with pytest.raises(InvalidMessage, match="fractionDigits"):
        parse_payment_message(raw, directory)


def test_header_fields_are_read(directory: StaticBicDirectory) -> None:
    parsed = parse_payment_message(Msg(txs=(Tx(uetr=uetr(1)),), header="head.001.001.04").bytes(), directory)
    assert parsed.header is not None
    assert (parsed.header.version, parsed.header.from_bic, parsed.header.message_definition_id) == (
        "head.001.001.04", "BANKUS33XXX", "pacs.008.001.08")
    assert parsed.created_at == "2025-06-02T10:00:00Z"


def test_comments_and_processing_instructions_are_harmless(directory: StaticBicDirectory) -> None:
    raw = Msg(txs=(Tx(uetr=uetr(1)),)).document().replace("<GrpHdr>", "<GrpHdr><!-- note --><?pi x?>")
    assert parse_payment_message(raw.encode(), directory).instructions()
    tree = etree.fromstring(raw.encode())
    assert tree is not None
