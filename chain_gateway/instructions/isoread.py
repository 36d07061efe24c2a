"""Reading any ISO 20022 message: find header and document, check they agree, validate both.

Messages arrive bare (``Document``), with a business application header, or inside a
transport wrapper (SWIFT ``Envelope``, SAA ``RequestPayload``, ``FedNowIncoming``...).
Wrappers have no schema here, so they are not interpreted: the ``AppHdr`` and
``Document`` are found by namespace anywhere in the tree (the outermost ones; a
``Document`` nested in another's ``SplmtryData`` is the outer document's business).

Order of checks, cheapest and most telling first; the first failure wins (all FF01):

1. safe parse (``xmlsafe``): size, DOCTYPE, depth;
2. exactly one ISO ``Document``, at most one ``AppHdr``;
3. header ``MsgDefIdr`` names the document's message (the XSDs cannot check this, CBPR+
   rule R5), so a mismatched header is reported as such whatever the type; only a
   header version lagging the Document's, same message and variant, is tolerated;
4. the message identifier is one this caller accepts (type, then version);
5. the header, then the document, against their XSDs.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from lxml import etree

from chain_gateway.errors import InvalidMessage

from .schemas import ISO_NS_PREFIX, MessageId, shipped_message_ids, validate_against_xsd
from .xmlsafe import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, parse_xml

HEADER_PREFIX = "head.001."


@dataclass(frozen=True)
class AppHeader:
    """The fields of a business application header (head.001) the gateway uses."""

    version: str
    business_message_id: str | None
    message_definition_id: str | None
    business_service: str | None
    from_bic: str | None
    to_bic: str | None
    created: str | None


@dataclass(frozen=True)
class IsoMessage:
    """A located, header-checked and schema-valid ISO 20022 message."""

    message_id: MessageId
    document: etree._Element
    header: AppHeader | None
    header_version_differs: bool = False


def _text(element: etree._Element, path: str) -> str | None:
    """Text at ``path`` (local names joined by ``/``, in ``element``'s namespace), stripped."""
    ns = etree.QName(element).namespace
    found = element.find("/".join(f"{{{ns}}}{step}" for step in path.split("/")))
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _locate(root: etree._Element) -> tuple[etree._Element, etree._Element | None]:
    """The outermost ISO Document and AppHdr; InvalidMessage unless exactly one Document."""
    documents: list[etree._Element] = []
    headers: list[etree._Element] = []
    strays: list[str] = []
    stack = [root]
    while stack:
        element = stack.pop()
        qname = etree.QName(element)
        namespace = qname.namespace or ""
        if qname.localname == "AppHdr" and namespace.startswith(ISO_NS_PREFIX + HEADER_PREFIX):
            headers.append(element)
            continue
        if qname.localname == "Document":
            if namespace.startswith(ISO_NS_PREFIX) and not namespace.startswith(ISO_NS_PREFIX + HEADER_PREFIX):
                documents.append(element)
                continue
            strays.append(namespace or "no namespace")
        stack.extend(reversed([child for child in element if isinstance(child.tag, str)]))
    if not documents:
        found = f"; found a Document in {strays[0]!r}, which is not an ISO 20022 namespace" if strays else ""
        raise InvalidMessage(
            "no ISO 20022 Document (urn:iso:std:iso:20022:tech:xsd:...) in the message" + found
        )
    if len(documents) > 1:
        raise InvalidMessage(f"expected one ISO 20022 Document, found {len(documents)}")
    if len(headers) > 1:
        raise InvalidMessage(f"expected at most one business application header, found {len(headers)}")
    return documents[0], (headers[0] if headers else None)


def _unsupported(message_id: MessageId, accepted: Collection[str]) -> InvalidMessage:
    """Name what is accepted instead: another version of the same message, or other types."""
    same_type = sorted(m for m in accepted if m.startswith(message_id.message_type + "."))
    if same_type:
        return InvalidMessage(
            f"{message_id} is not a supported version of {message_id.message_type}; "
            f"supported: {', '.join(same_type)}",
            message=str(message_id),
            unsupported="version",
        )
    types = sorted({m.rsplit(".", 2)[0] for m in accepted})
    return InvalidMessage(
        f"unsupported message type {message_id.message_type} ({message_id}); "
        f"accepted here: {', '.join(types)}",
        message=str(message_id),
        unsupported="type",
    )


def read_header(element: etree._Element) -> AppHeader:
    """Read the header fields (the element is assumed schema-valid)."""
    return AppHeader(
        version=str(MessageId.from_namespace(etree.QName(element).namespace)),
        business_message_id=_text(element, "BizMsgIdr"),
        message_definition_id=_text(element, "MsgDefIdr"),
        business_service=_text(element, "BizSvc"),
        from_bic=_text(element, "Fr/FIId/FinInstnId/BICFI"),
        to_bic=_text(element, "To/FIId/FinInstnId/BICFI"),
        created=_text(element, "CreDt"),
    )


def read_iso_message(
    data: bytes | str,
    *,
    accepted: Collection[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> IsoMessage:
    """Parse, locate, cross-check and validate one message (module docstring for the order).

    ``accepted`` lists message identifiers (``pacs.008.001.08``...) the caller takes;
    default: every message whose XSD ships in ``xsd/``.
    """
    tree = parse_xml(data, max_bytes=max_bytes, max_depth=max_depth)
    document, header_element = _locate(tree.getroot())
    message_id = MessageId.from_namespace(etree.QName(document).namespace)
    if message_id is None:
        raise InvalidMessage(
            f"Document namespace {etree.QName(document).namespace!r} does not name an ISO 20022 message"
        )
    if header_element is not None:
        declared = _text(header_element, "MsgDefIdr")
        declared_id = MessageId.parse(declared or "")
        # A header must name the document's message. A header whose version lags its
        # Document's within the same message and variant (published CBPR+ samples put
        # pacs.008.001.08 on a .12 Document) names the same message, so it is accepted and
        # IsoMessage.header_version_differs records it; a header ahead of its Document
        # claims a version the Document is not, and is refused.
        lagging_header = declared_id is not None and (declared_id.message_type, declared_id.variant) == (
            message_id.message_type, message_id.variant) and declared_id.version <= message_id.version
        if not lagging_header:
            raise InvalidMessage(
                f"header does not match its document: AppHdr MsgDefIdr is {declared!r} "
                f"but the Document is {message_id}",
                expected=str(message_id),
                actual=declared,
            )
    shipped = shipped_message_ids()
    allowed = frozenset(shipped if accepted is None else accepted) & shipped
    if str(message_id) not in allowed:
        raise _unsupported(message_id, allowed)
    header: AppHeader | None = None
    if header_element is not None:
        header_id = MessageId.from_namespace(etree.QName(header_element).namespace)
        if header_id is None or str(header_id) not in shipped:
            raise InvalidMessage(
                f"unsupported business application header {etree.QName(header_element).namespace!r}; "
                f"supported: {', '.join(sorted(m for m in shipped if m.startswith(HEADER_PREFIX)))}"
            )
        validate_against_xsd(header_element, str(header_id), part="AppHdr")
        header = read_header(header_element)
    validate_against_xsd(document, str(message_id), part=f"{message_id} Document")
    return IsoMessage(message_id=message_id, document=document, header=header,
                      header_version_differs=header is not None and header.message_definition_id != str(message_id))
