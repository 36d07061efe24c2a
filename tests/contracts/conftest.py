"""Fixtures for the contract tests: event decoding, custom-error assertions, error
selectors, and transactions sent from a bank's own key.

eth-tester has a non-zero base fee (a zero gas price is refused), so a bank that sends its
own transaction (a debtor cancelling its queued payment, a bank trying to grant itself a
role) first gets ETH from a development account that no other fixture signs with.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD

from chain_gateway.chain import ChainHandle
from chain_gateway.ledger import Deployment, LedgerClient
from chain_gateway.transactions import TransactionFailed, TxSender, encode_call

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
REGISTRAR_ROLE = keccak(text="REGISTRAR_ROLE")
DEFAULT_ADMIN_ROLE = b"\0" * 32
GAS_OWN_TX = 200_000

# The full signatures, written out here rather than read from the ABI, so a renamed or
# retyped error is caught by the tests instead of silently followed.
ERROR_SIGNATURES = {
    "InsufficientBalance": "InsufficientBalance(address,bytes3,uint256,uint256)",
    "DuplicateUetr": "DuplicateUetr(bytes16)",
    "InvalidSignature": "InvalidSignature()",
    "NotActive": "NotActive(address)",
    "OrderExpired": "OrderExpired(uint64)",
    "InvalidOrder": "InvalidOrder(bytes16)",
    "LimitExceeded": "LimitExceeded(address,bytes3,uint8,uint256,uint256)",
    "NotQueued": "NotQueued(bytes16)",
    "NotDebtor": "NotDebtor(bytes16,address)",
    "GridlockInfeasible": "GridlockInfeasible(address,bytes3,uint256,uint256)",
    "GridlockItemInvalid": "GridlockItemInvalid(bytes16)",
    "InvalidFunding": "InvalidFunding(address,bytes3,uint256)",
    "LengthMismatch": "LengthMismatch(uint256,uint256)",
}


def selector(name: str) -> bytes:
    """The 4-byte selector of one of the ledger's custom errors."""
    return function_signature_to_4byte_selector(ERROR_SIGNATURES[name])


def _norm(value: Any) -> Any:
    """Addresses compared checksummed (eth_abi decodes them lower-case), bytes as bytes."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_norm(v) for v in value)
    return value


@contextlib.contextmanager
def _reverts(error_name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[TransactionFailed]]:
    with pytest.raises(TransactionFailed) as info:
        yield info
    failure = info.value
    assert failure.error_name == error_name, f"reverted with {failure.error_name}, expected {error_name}: {failure}"
    actual = {k: _norm(v) for k, v in failure.error_args.items()}
    assert actual == {k: _norm(v) for k, v in expected_args.items()}


@pytest.fixture(scope="session")
def error_selector() -> Callable[[str], bytes]:
    """`error_selector("InsufficientBalance")` -> the 4 bytes a PaymentRejected event carries."""
    return selector


@pytest.fixture(scope="session")
def reverts() -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """`with reverts("DuplicateUetr", uetr=u): ...`: the call reverts with exactly this custom
    error and exactly these arguments (every argument must be given)."""
    return _reverts


@pytest.fixture(scope="session")
def contracts(chain: ChainHandle, deployment: Deployment) -> dict[str, Contract]:
    """web3 contract objects, used only to decode events (calls go through LedgerClient)."""
    return {
        "ledger": chain.w3.eth.contract(address=deployment.ledger, abi=deployment.abi["SettlementLedger"]),
        "registry": chain.w3.eth.contract(address=deployment.registry, abi=deployment.abi["ParticipantRegistry"]),
    }


def decode_events(contract: Contract, receipt: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The args of every `name` event `contract` emitted in `receipt`, in log order."""
    logs = [log for log in receipt["logs"] if to_checksum_address(log["address"]) == contract.address]
    decoded = contract.events[name]().process_receipt({**receipt, "logs": logs}, errors=DISCARD)
    return [{k: _norm(v) for k, v in event["args"].items()} for event in decoded]


@pytest.fixture(scope="session")
def events(contracts: dict[str, Contract]) -> Callable[..., list[dict[str, Any]]]:
    """`events(receipt, "PaymentSettled")` -> decoded args of the ledger's (or, with
    `contract="registry"`, the registry's) events of that name."""
    def _events(receipt: dict[str, Any], name: str, contract: str = "ledger") -> list[dict[str, Any]]:
        return decode_events(contracts[contract], receipt, name)
    return _events


@pytest.fixture
def stranger() -> LocalAccount:
    """A key that is neither registered nor holds any role."""
    return Account.create()


@pytest.fixture
def call_as(client: LedgerClient, own_sender: Callable[[LocalAccount], TxSender]) -> Callable[..., dict[str, Any]]:
    """`call_as(account_or_sender, "ledger", "cancelQueued(bytes16)", [uetr])`: a transaction
    from that key (a TxSender is used as is), with the arguments encoded from the signature."""
    def _call(who: LocalAccount | TxSender, contract: str, signature: str, args: list[Any],
              gas: int = GAS_OWN_TX) -> dict[str, Any]:
        sender = who if isinstance(who, TxSender) else own_sender(who)
        types = _split_types(signature[signature.index("(") + 1:-1])
        to = client.ledger if contract == "ledger" else client.registry
        return sender.transact(to, encode_call(signature, types, args), gas=gas)
    return _call


def _split_types(inner: str) -> list[str]:
    """"(a,b),c[]" -> ["(a,b)", "c[]"]: split a parameter list on top-level commas."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(inner[start:i])
            start = i + 1
    if inner:
        out.append(inner[start:])
    return out


@pytest.fixture
def latest_timestamp(chain: ChainHandle) -> Callable[[], int]:
    return lambda: int(chain.w3.eth.get_block("latest")["timestamp"])


@pytest.fixture
def queue_payment(client: LedgerClient, make_order: Callable[..., Any]) -> Callable[..., Any]:
    """Submit a queue-flagged order that the debtor cannot cover yet; returns the order."""
    def _queue(debtor: Any, creditor: Any, amount: int, currency: str = "USD", *, flags: int = 1) -> Any:
        order, sig = make_order(debtor, creditor, amount, currency, flags=flags)
        client.submit_payment(order, sig)
        assert client.payment_status(order.uetr) == 1, "the debtor could cover it: not queued"
        return order
    return _queue
