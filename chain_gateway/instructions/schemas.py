"""The ISO 20022 XSDs shipped in ``xsd/`` and validation against them.

Schemas are compiled once per process (lxml / libxml2, which validates in C) and looked
up by target namespace. Only what ships here is known: a message whose namespace has no
XSD in ``xsd/`` is "unsupported", whatever its type. Errors name the element path and
the problem, so a bank can fix its message from the 400 alone.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Final

from lxml import etree

from chain_gateway.errors import InvalidMessage

ISO_NS_PREFIX: Final = "urn:iso:std:iso:20022:tech:xsd:"
_MESSAGE_ID: Final = re.compile(r"([a-z]{4})\.(\d{3})\.(\d{3})\.(\d{2})")
_NS_IN_TEXT: Final = re.compile(r"\{[^}]*\}")
_MAX_ERRORS: Final = 10
_MAX_DETAIL_MESSAGE: Final = 300
_PACKAGE: Final = "chain_gateway.instructions"
# A compiled schema is shared; its error_log is per object, so validation and reading the
# log must not interleave between threads.
_VALIDATION_LOCK: Final = threading.Lock()


@dataclass(frozen=True)
class MessageId:
    """An ISO 20022 message identifier such as ``pacs.008.001.08``."""

    area: str  # "pacs"
    message: str  # "008"
    variant: str  # "001"
    version: str  # "08"

    @property
    def message_type(self) -> str:
        """``pacs.008``: the message without variant and version."""
        return f"{self.area}.{self.message}"

    @property
    def namespace(self) -> str:
        """The document's XML namespace."""
        return ISO_NS_PREFIX + str(self)

    def __str__(self) -> str:
        return f"{self.area}.{self.message}.{self.variant}.{self.version}"

    @classmethod
    def parse(cls, text: str) -> MessageId | None:
        """Parse ``pacs.008.001.08``; None when the text is not a message identifier."""
        match = _MESSAGE_ID.fullmatch(text)
        return cls(*match.groups()) if match else None

    @classmethod
    def from_namespace(cls, namespace: str | None) -> MessageId | None:
        """The identifier of an ISO 20022 namespace; None for any other namespace."""
        if not namespace or not namespace.startswith(ISO_NS_PREFIX):
            return None
        return cls.parse(namespace[len(ISO_NS_PREFIX):])


@lru_cache(maxsize=1)
def shipped_message_ids() -> frozenset[str]:
    """Identifiers of every XSD in ``xsd/`` (e.g. ``pacs.008.001.08``, ``head.001.001.02``)."""
    folder = resources.files(_PACKAGE).joinpath("xsd")
    return frozenset(
        entry.name[: -len(".xsd")] for entry in folder.iterdir() if entry.name.endswith(".xsd")
    )


@cache
def load_schema(message_id: str) -> etree.XMLSchema:
    """Compile and cache the XSD for ``message_id``; InvalidMessage if none ships."""
    if message_id not in shipped_message_ids():
        raise InvalidMessage(f"no XSD for {message_id}: unsupported message", message=message_id)
    data = resources.files(_PACKAGE).joinpath("xsd").joinpath(f"{message_id}.xsd").read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.fromstring(data, parser=parser))


def _readable_path(element: etree._Element, xpath: str | None, line: int) -> str:
    """Turn libxml2's positional path (``/*/*[2]/*[4]``) into local names, rooted at ``element``."""
    if xpath:
        steps = xpath.split("/")[2:]  # drop "" and the root "*", which is ``element`` itself
        try:
            found = element.xpath("./" + "/".join(steps)) if steps else [element]
        except etree.XPathError:
            found = []
        if isinstance(found, list) and found and isinstance(found[0], etree._Element):
            node: etree._Element | None = found[0]
            names: list[str] = []
            while node is not None:
                names.append(etree.QName(node).localname)
                node = None if node is element else node.getparent()
            return "/" + "/".join(reversed(names))
    return f"line {line}"


def schema_errors(element: etree._Element, message_id: str) -> list[dict[str, object]]:
    """Validate ``element`` (a Document or AppHdr, in place) and list the problems found."""
    schema = load_schema(message_id)
    with _VALIDATION_LOCK:
        if schema.validate(element):
            return []
        entries = list(schema.error_log)[:_MAX_ERRORS]
    errors: list[dict[str, object]] = []
    for entry in entries:
        message = _NS_IN_TEXT.sub("", entry.message)
        if len(message) > _MAX_DETAIL_MESSAGE:
            message = message[:_MAX_DETAIL_MESSAGE] + "..."
        errors.append(
            {"path": _readable_path(element, entry.path, entry.line), "line": entry.line, "message": message}
        )
    return errors


def validate_against_xsd(element: etree._Element, message_id: str, *, part: str) -> None:
    """Raise InvalidMessage (FF01) naming path and problem when ``element`` fails its XSD."""
    errors = schema_errors(element, message_id)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidMessage(
            f"{part} is not valid against the {message_id} XSD: at {first['path']} "
            f"(line {first['line']}): {first['message']}{more}",
            message=message_id,
            errors=errors,
        )
