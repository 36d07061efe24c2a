"""Building outgoing ISO 20022 XML: element helpers, the AppHdr, and the validate-or-raise rule.

Every message the gateway renders is validated against its XSD before it leaves: a render
that fails its own schema is a bug in the gateway, never the recipient's problem, so it
raises ``RenderError`` instead of sending something a bank's parser would choke on.
"""
from __future__ import annotations

import datetime as dt
from typing import Final

from lxml import etree

from chain_gateway.errors import GatewayError

from .bic import normalise_bic
from .schemas import ISO_NS_PREFIX, schema_errors

#: The wrapper used when a header is rendered: the SWIFT envelope CBPR+ samples use.
ENVELOPE_NS: Final = "urn:swift:xsd:envelope"
HEADER_VERSION: Final = "head.001.001.02"


class RenderError(GatewayError):
    """Raised when a message the gateway rendered is not valid against its own XSD (a bug)."""

    title = "Rendered message failed its schema"


class Builder:
    """Creates elements in one ISO namespace: ``b.sub(parent, "GrpHdr/MsgId", "M1")``."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.ns = ISO_NS_PREFIX + message_id

    def root(self, name: str) -> etree._Element:
        """A new root element with this namespace as the default."""
        return etree.Element(f"{{{self.ns}}}{name}", nsmap={None: self.ns})

    def sub(
        self, parent: etree._Element, path: str, text: str | None = None, **attrib: str
    ) -> etree._Element:
        """Append the elements of ``path`` (always new ones); set text/attributes on the last."""
        element = parent
        for step in path.split("/"):
            element = etree.SubElement(element, f"{{{self.ns}}}{step}")
        try:
            if text is not None:
                element.text = text
            for key, value in attrib.items():
                element.set(key, value)
        except ValueError as exc:  # lxml refuses control characters and the like
            raise RenderError(f"{path}: value is not XML-compatible text", path=path) from exc
        return element

    def opt(self, parent: etree._Element, path: str, text: str | None) -> None:
        """Append ``path`` with ``text`` only when ``text`` is not None."""
        if text is not None:
            self.sub(parent, path, text)


def iso_datetime(value: dt.datetime, *, field: str) -> str:
    """ISO 8601 with offset, to the second; naive datetimes are a caller bug."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise RenderError(f"{field} must be timezone-aware", field=field)
    return value.replace(microsecond=0).isoformat()


def utc_z(value: dt.datetime, *, field: str) -> str:
    """UTC with a ``Z`` suffix (head.001's ISONormalisedDateTime)."""
    iso_datetime(value, field=field)
    return value.astimezone(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def check_rendered(element: etree._Element, message_id: str) -> None:
    """Validate a rendered element against its XSD; raise RenderError on any error."""
    errors = schema_errors(element, message_id)
    if errors:
        first = errors[0]
        raise RenderError(
            f"rendered {message_id} is not valid against its XSD: at {first['path']}: {first['message']}",
            errors=errors,
        )


def app_header(
    *, from_bic: str, to_bic: str, business_message_id: str, message_definition_id: str, created_at: dt.datetime
) -> etree._Element:
    """A head.001.001.02 business application header, validated."""
    b = Builder(HEADER_VERSION)
    header = b.root("AppHdr")
    b.sub(header, "Fr/FIId/FinInstnId/BICFI", normalise_bic(from_bic, role="header from"))
    b.sub(header, "To/FIId/FinInstnId/BICFI", normalise_bic(to_bic, role="header to"))
    b.sub(header, "BizMsgIdr", business_message_id)
    b.sub(header, "MsgDefIdr", message_definition_id)
    b.sub(header, "CreDt", utc_z(created_at, field="created_at"))
    check_rendered(header, HEADER_VERSION)
    return header


def serialise(document: etree._Element, header: etree._Element | None) -> bytes:
    """UTF-8 bytes with an XML declaration; with a header, both inside a SWIFT ``Envelope``."""
    if header is None:
        root = document
    else:
        root = etree.Element(f"{{{ENVELOPE_NS}}}Envelope", nsmap={None: ENVELOPE_NS})
        root.append(header)
        root.append(document)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
