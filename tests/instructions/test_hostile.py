"""Hostile and broken XML: every one ends in InvalidMessage, and nothing but GatewayErrors escape."""
from __future__ import annotations

import time

import pytest

from chain_gateway.errors import GatewayError, InvalidMessage
from chain_gateway.instructions import StaticBicDirectory, parse_payment_message
from chain_gateway.instructions.xmlsafe import parse_xml

from .isobuild import Msg, Tx, uetr

VALID = Msg(txs=(Tx(uetr=uetr(1)),)).document()
NS08 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"

_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + f']><Document xmlns="{NS08}"><FIToFICstmrCdtTrf><GrpHdr><MsgId>&j;</MsgId></GrpHdr></FIToFICstmrCdtTrf></Document>'
)

HOSTILE: dict[str, bytes] = {
    "xxe_file": (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + VALID.replace("<MsgId>MSG-0001</MsgId>", "<MsgId>&x;</MsgId>").encode()
    ),
    "xxe_parameter_entity": (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>'
        + VALID.encode()
    ),
    "external_dtd": b'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "http://127.0.0.1:9/x.dtd">' + VALID.encode(),
    "billion_laughs": _LAUGHS.encode(),
    "quadratic_blowup": (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "' + b"x" * 50_000 + b'">]><d>' + b"&x;" * 50 + b"</d>"
    ),
    "undefined_entity": VALID.replace("MSG-0001", "&x;").encode(),
    "deep_nesting": VALID.replace("<Nm>Acme Trading</Nm>", "<Nm>" + "<a>" * 100 + "</a>" * 100 + "</Nm>").encode(),
    "very_deep_nesting": b"<a>" * 100_000 + b"</a>" * 100_000,
    "not_xml": b"this is not XML",
    "json_body": b'{"amount": "1.00"}',
    "empty": b"",
    "whitespace": b"   \n ",
    "truncated": VALID[: len(VALID) // 2].encode(),
    "binary": bytes(range(256)),
    "wrong_namespace": VALID.replace(NS08, "urn:example:evil:pacs.008.001.08").encode(),
    "no_namespace": VALID.replace(f' xmlns="{NS08}"', "").encode(),
    "child_in_wrong_namespace": VALID.replace("<GrpHdr>", '<GrpHdr xmlns="urn:example:evil">', 1).encode(),
    "mixed_versions_header_vs_document": Msg(txs=(Tx(uetr=uetr(1)),), header="head.001.001.02", msg_def_idr="pacs.008.001.12").bytes(),
    "header_names_another_message": Msg(txs=(Tx(uetr=uetr(1)),), header="head.001.001.02", msg_def_idr="pacs.009.001.08").bytes(),
    "two_documents": f"<Batch>{VALID}{VALID}</Batch>".encode(),
    "two_headers": Msg(txs=(Tx(uetr=uetr(1)),), header="head.001.001.02", wrapper="W").xml()
    .replace("<W>", "<W>" + Msg(header="head.001.001.02").app_header()).encode(),
    "unknown_header_version": Msg(txs=(Tx(uetr=uetr(1)),), header="head.001.001.03").bytes(),
    "unsupported_version_bare": Msg(version="07").bytes(),
    "unsupported_future_version": Msg(version="13").bytes(),
    "nb_of_txs_mismatch": Msg(txs=(Tx(uetr=uetr(1)),), nb_of_txs=2).bytes(),
    "ctrl_sum_mismatch": Msg(txs=(Tx(uetr=uetr(1)),), ctrl_sum="11.00").bytes(),
    "total_mismatch": Msg(txs=(Tx(uetr=uetr(1)),), total=("USD", "9.99")).bytes(),
    "total_currency_mismatch": Msg(txs=(Tx(uetr=uetr(1)),), total=("EUR", "10.00")).bytes(),
    "schema_invalid_uetr_v1": Msg(txs=(Tx(uetr="6f1b7c2a-3d4e-1f5a-8b6c-7d8e9f0a1b2c"),)).bytes(),
    "schema_invalid_negative_amount": Msg(txs=(Tx(amount="-1.00"),)).bytes(),
    "schema_invalid_amount_text": Msg(txs=(Tx(amount="1e3"),)).bytes(),
    "undecodable_bytes": ('<?xml version="1.0" encoding="UTF-8"?>' + VALID).encode("utf-8").replace(b"Acme", b"\xff\xfe\xfd"),
    "processing_instruction_only": b"<?xml version='1.0'?><?evil?>",
}

EXPECTED_DETAIL = {
    "xxe_file": "DOCTYPE",
    "billion_laughs": "DOCTYPE",
    "deep_nesting": "nesting deeper",
    "wrong_namespace": "not an ISO 20022 namespace",
    "mixed_versions_header_vs_document": "header does not match its document",
    "header_names_another_message": "header does not match its document",
    "two_documents": "found 2",
    "two_headers": "at most one business application header",
    "unknown_header_version": "unsupported business application header",
    "unsupported_version_bare": "not a supported version",
    "unsupported_future_version": "not a supported version",
    "nb_of_txs_mismatch": "NbOfTxs",
    "ctrl_sum_mismatch": "CtrlSum",
    "total_mismatch": "TtlIntrBkSttlmAmt",
    "schema_invalid_uetr_v1": "UETR",
    "child_in_wrong_namespace": "XSD",
}
EXPECTED_CODE = {"nb_of_txs_mismatch": "AM18", "ctrl_sum_mismatch": "AM10", "total_mismatch": "AM10", "total_currency_mismatch": "AM10"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_invalid_message(name: str, directory: StaticBicDirectory) -> None:
    started = time.perf_counter()
    try:
        parse_payment_message(HOSTILE[name], directory)
    except InvalidMessage as error:
        assert error.reason_code == EXPECTED_CODE.get(name, "FF01"), (name, error.detail)
        assert name not in EXPECTED_DETAIL or EXPECTED_DETAIL[name] in error.detail, (name, error.detail)
    except GatewayError as error:  # pragma: no cover - shown as a failure
        pytest.fail(f"{name}: {type(error).__name__} instead of InvalidMessage: {error.detail}")
    except Exception as error:  # pragma: no cover - shown as a failure
        pytest.fail(f"{name}: a non-GatewayError escaped: {type(error).__name__}: {error}")
    else:  # pragma: no cover
        pytest.fail(f"{name}: accepted")
    assert time.perf_counter() - started < 2.0, name


def test_hostile_oversize_body(directory: StaticBicDirectory) -> None:
    padding = "x" * 1024
    big = VALID.replace("<Nm>Acme Trading</Nm>", "<Nm>Acme Trading</Nm>" + f"<!--{padding}-->" * 6000).encode()
    with pytest.raises(InvalidMessage, match="exceeds the 5242880-byte limit") as caught:
        parse_payment_message(big, directory)
    assert caught.value.fields["limit"] == 5 * 1024 * 1024
    with pytest.raises(InvalidMessage, match="exceeds the 1000-byte limit"):
        parse_payment_message(VALID.encode(), directory, max_bytes=1000)


def test_depth_limit_is_a_parameter(directory: StaticBicDirectory) -> None:
    assert parse_payment_message(VALID.encode(), directory).instructions()
    with pytest.raises(InvalidMessage, match="nesting deeper than 5 levels"):
        parse_payment_message(VALID.encode(), directory, max_depth=5)


def test_xxe_never_reads_the_file() -> None:
    """Even the low-level parser refuses: no entity is ever resolved into the tree."""
    with pytest.raises(InvalidMessage, match="DOCTYPE"):
        parse_xml(HOSTILE["xxe_file"])
    with pytest.raises(InvalidMessage):
        parse_xml(b'<a>&#0;</a>')


def test_non_bytes_input_is_invalid_message(directory: StaticBicDirectory) -> None:
    with pytest.raises(InvalidMessage):
        parse_payment_message(12345, directory)  # type: ignore[arg-type]
    # str input is accepted as UTF-8 text
    assert parse_payment_message(VALID, directory).instructions()


def test_uetr_collision_in_one_message(directory: StaticBicDirectory) -> None:
    """The first transaction keeps the UETR; later ones are rejected DUPL, the rest settle."""
    message = Msg(txs=(
        Tx(e2e="A", uetr=uetr(7)),
        Tx(e2e="B", uetr=uetr(8)),
        Tx(e2e="C", uetr=uetr(7)),
        Tx(e2e="D", uetr=uetr(7), ccy="XAU", amount="1"),
    ))
    parsed = parse_payment_message(message.bytes(), directory)
    assert [t.reason_code for t in parsed.transactions] == [None, None, "DUPL", "DUPL"]
    assert "already used by transaction 1" in (parsed.transactions[2].rejection.detail if parsed.transactions[2].rejection else "")
    assert [i.end_to_end_id for i in parsed.instructions()] == ["A", "B"]


def test_uetr_collision_with_a_rejected_first_use(directory: StaticBicDirectory) -> None:
    """A UETR is spent by its first transaction even if that one is rejected."""
    message = Msg(txs=(Tx(e2e="A", uetr=uetr(7), ccy="XAU", amount="1"), Tx(e2e="B", uetr=uetr(7))))
    parsed = parse_payment_message(message.bytes(), directory)
    assert [t.reason_code for t in parsed.transactions] == ["AM03", "DUPL"]
