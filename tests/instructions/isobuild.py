"""Builders for test pacs.008 / pacs.009 messages, valid against the shipped XSDs.

Element order follows the XSD sequences; every builder output used as "valid" in the tests
is also checked against its XSD by ``test_isobuild_outputs_are_schema_valid``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["pacs.008", "pacs.009"]
NS = "urn:iso:std:iso:20022:tech:xsd:"


@dataclass(frozen=True)
class Agent:
    """An agent by BICFI or by clearing-system member id."""

    bic: str | None = None
    member_id: str | None = None

    def xml(self, tag: str) -> str:
        inner = f"<BICFI>{self.bic}</BICFI>" if self.bic else ""
        if self.member_id:
            inner += (
                "<ClrSysMmbId><ClrSysId><Cd>USABA</Cd></ClrSysId>"
                f"<MmbId>{self.member_id}</MmbId></ClrSysMmbId>"
            )
        return f"<{tag}><FinInstnId>{inner}</FinInstnId></{tag}>"


@dataclass(frozen=True)
class Tx:
    """One CdtTrfTxInf; ``None`` leaves an optional element out."""

    e2e: str = "E2E-1"
    uetr: str | None = "6f1b7c2a-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
    ccy: str = "USD"
    amount: str = "10.00"
    value_date: str | None = "2025-06-02"
    priority: str | None = None
    instructed: tuple[str, str] | None = None  # (ccy, amount), pacs.008 only
    rate: str | None = None  # pacs.008 only
    instg: Agent | None = Agent("BANKUS33XXX")
    instd: Agent | None = Agent("BANKGB22")
    dbtr_agt: Agent | None = None  # pacs.008 default BANKUS33XXX (required there)
    cdtr_agt: Agent | None = None  # pacs.008 default BANKGB22XXX (required there)
    dbtr_fi: Agent = Agent("BANKUS33XXX")  # pacs.009 Dbtr
    cdtr_fi: Agent = Agent("BANKGB22XXX")  # pacs.009 Cdtr
    dbtr_name: str = "Acme Trading"
    dbtr_country: str | None = "US"
    dbtr_account: str | None = "11223344"
    cdtr_name: str = "Globex Ltd"
    cdtr_country: str | None = "GB"
    cdtr_iban: str | None = "GB29NWBK60161331926819"
    ustrd: tuple[str, ...] = ()
    instr_id: str | None = None
    tx_id: str | None = None

    def xml(self, kind: Kind) -> str:
        pmt = (f"<InstrId>{self.instr_id}</InstrId>" if self.instr_id else "") + f"<EndToEndId>{self.e2e}</EndToEndId>"
        pmt += f"<TxId>{self.tx_id}</TxId>" if self.tx_id else ""
        pmt += f"<UETR>{self.uetr}</UETR>" if self.uetr else ""
        out = f"<CdtTrfTxInf><PmtId>{pmt}</PmtId>"
        out += f'<IntrBkSttlmAmt Ccy="{self.ccy}">{self.amount}</IntrBkSttlmAmt>'
        out += f"<IntrBkSttlmDt>{self.value_date}</IntrBkSttlmDt>" if self.value_date else ""
        out += f"<SttlmPrty>{self.priority}</SttlmPrty>" if self.priority else ""
        if kind == "pacs.008":
            if self.instructed:
                out += f'<InstdAmt Ccy="{self.instructed[0]}">{self.instructed[1]}</InstdAmt>'
            out += f"<XchgRate>{self.rate}</XchgRate>" if self.rate else ""
            out += "<ChrgBr>SHAR</ChrgBr>"
        out += self.instg.xml("InstgAgt") if self.instg else ""
        out += self.instd.xml("InstdAgt") if self.instd else ""
        if kind == "pacs.008":
            out += self._party("Dbtr", self.dbtr_name, self.dbtr_country)
            out += f"<DbtrAcct><Id><Othr><Id>{self.dbtr_account}</Id></Othr></Id></DbtrAcct>" if self.dbtr_account else ""
            out += (self.dbtr_agt or Agent("BANKUS33XXX")).xml("DbtrAgt")
            out += (self.cdtr_agt or Agent("BANKGB22XXX")).xml("CdtrAgt")
            out += self._party("Cdtr", self.cdtr_name, self.cdtr_country)
            out += f"<CdtrAcct><Id><IBAN>{self.cdtr_iban}</IBAN></Id></CdtrAcct>" if self.cdtr_iban else ""
        else:
            out += self.dbtr_fi.xml("Dbtr")
            out += self.dbtr_agt.xml("DbtrAgt") if self.dbtr_agt else ""
            out += self.cdtr_agt.xml("CdtrAgt") if self.cdtr_agt else ""
            out += self.cdtr_fi.xml("Cdtr")
        if self.ustrd:
            out += "<RmtInf>" + "".join(f"<Ustrd>{u}</Ustrd>" for u in self.ustrd) + "</RmtInf>"
        return out + "</CdtTrfTxInf>"

    @staticmethod
    def _party(tag: str, name: str, country: str | None) -> str:
        address = f"<PstlAdr><Ctry>{country}</Ctry></PstlAdr>" if country else ""
        return f"<{tag}><Nm>{name}</Nm>{address}</{tag}>"


@dataclass(frozen=True)
class Msg:
    """A pacs.008 / pacs.009 Document; ``header`` wraps it with an AppHdr in ``wrapper``."""

    kind: Kind = "pacs.008"
    version: str = "08"
    txs: tuple[Tx, ...] = (Tx(),)
    msg_id: str = "MSG-0001"
    nb_of_txs: int | None = None  # default: len(txs)
    ctrl_sum: str | None = None
    total: tuple[str, str] | None = None  # (ccy, amount)
    group_instg: Agent | None = None
    group_instd: Agent | None = None
    header: str | None = None  # head.001.001.xx version
    msg_def_idr: str | None = None  # default: the document's id
    wrapper: str | None = "Envelope"
    extra_attrs: dict[str, str] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        return f"{self.kind}.001.{self.version}"

    def document(self) -> str:
        root = "FIToFICstmrCdtTrf" if self.kind == "pacs.008" else "FICdtTrf"
        group = f"<MsgId>{self.msg_id}</MsgId><CreDtTm>2025-06-02T10:00:00Z</CreDtTm>"
        group += f"<NbOfTxs>{len(self.txs) if self.nb_of_txs is None else self.nb_of_txs}</NbOfTxs>"
        group += f"<CtrlSum>{self.ctrl_sum}</CtrlSum>" if self.ctrl_sum else ""
        if self.total:
            group += f'<TtlIntrBkSttlmAmt Ccy="{self.total[0]}">{self.total[1]}</TtlIntrBkSttlmAmt>'
        group += "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf>"
        group += self.group_instg.xml("InstgAgt") if self.group_instg else ""
        group += self.group_instd.xml("InstdAgt") if self.group_instd else ""
        body = "".join(tx.xml(self.kind) for tx in self.txs)
        return (
            f'<Document xmlns="{NS}{self.message_id}"><{root}><GrpHdr>{group}</GrpHdr>'
            f"{body}</{root}></Document>"
        )

    def app_header(self) -> str:
        assert self.header is not None
        return (
            f'<AppHdr xmlns="{NS}{self.header}">'
            "<Fr><FIId><FinInstnId><BICFI>BANKUS33XXX</BICFI></FinInstnId></FIId></Fr>"
            "<To><FIId><FinInstnId><BICFI>SETLGB2LXXX</BICFI></FinInstnId></FIId></To>"
            f"<BizMsgIdr>{self.msg_id}</BizMsgIdr>"
            f"<MsgDefIdr>{self.msg_def_idr or self.message_id}</MsgDefIdr>"
            "<CreDt>2025-06-02T10:00:00Z</CreDt></AppHdr>"
        )

    def xml(self) -> str:
        if self.header is None:
            return self.document()
        inner = self.app_header() + self.document()
        if self.wrapper == "Envelope":
            return f'<Envelope xmlns="urn:swift:xsd:envelope">{inner}</Envelope>'
        return f"<{self.wrapper}>{inner}</{self.wrapper}>"

    def bytes(self) -> bytes:
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + self.xml()).encode()


def uetr(n: int) -> str:
    """A deterministic v4 UETR numbered ``n``."""
    return f"00000000-0000-4000-8000-{n:012d}"
