"""Contract security on eth-tester: re-entrancy, role escalation, signature malleability,
upgrade and admin-key misuse. Each property is shown by attacking it, not by reading code.

* Re-entrancy: the only external call the ledger makes while moving money is to the
  registry, through a view interface (STATICCALL). A hostile registry holding RELAYER_ROLE
  replays the order being processed from inside that call: it cannot move money twice.
* Roles: no bank, relayer or stranger can give itself a role, fund, or reach the FX debit
  entry point; the relayer cannot fund.
* Malleability: the high-s twin of a valid signature is refused on-chain (without consuming
  the UETR) and by the gateway's ``recover_signer``.
* Upgrade and admin: no proxy, no DELEGATECALL or SELFDESTRUCT in the code, no upgrade
  function; the admin role transfers and renounces as AccessControl says; the operator can
  debit a bank only through ``defund`` (with ``Defunded``), whatever else it calls.
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from chain_gateway.chain import ChainHandle
from chain_gateway.errors import InvalidSignature
from chain_gateway.ledger import Deployment, LedgerClient
from chain_gateway.signing import (
    _SECP256K1_HALF_N,
    PaymentOrder,
    order_digest,
    recover_signer,
    sign_order,
    verify_order,
)
from chain_gateway.toolchain import compile_contracts
from chain_gateway.transactions import TransactionFailed, TxSender, encode_call
from tests.conftest import Bank
from tests.security.solidity import compile_test_contracts

N = 2 * _SECP256K1_HALF_N + 1
OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
REGISTRAR_ROLE = keccak(text="REGISTRAR_ROLE")
FX_SETTLER_ROLE = keccak(text="FX_SETTLER_ROLE")
ADMIN = b"\0" * 32
SETTLED_TOPIC = keccak(text="PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32)")
DEFUNDED_TOPIC = keccak(text="Defunded(address,bytes3,uint256,bytes32)")
FX_LEGS = "(bytes16,address,address,address,bytes3,uint256,bytes3,uint256,bytes32,bytes32)"


def _deploy(sender: TxSender, bytecode: str, types: list[str] | None = None, args: list[Any] | None = None) -> str:
    data = bytes.fromhex(bytecode[2:]) + (abi_encode(types, args) if types else b"")
    return to_checksum_address(sender.transact(None, data, gas=8_000_000)["contractAddress"])


def _logs(receipt: dict[str, Any], topic: bytes, address: str) -> list[Any]:
    return [lg for lg in receipt["logs"]
            if to_checksum_address(lg["address"]) == address and bytes(lg["topics"][0]) == topic]


def _view(chain: ChainHandle, to: str, sig: str, types: list[str], args: list[Any]) -> bytes:
    return bytes(chain.w3.eth.call({"to": to, "data": encode_call(sig, types, args)}))


# ------------------------------------------------------------------------ re-entrancy
@pytest.mark.parametrize("mode", [1, 2], ids=["greedy", "telltale"])
def test_reentering_registry_cannot_move_money_twice(client: LedgerClient, chain: ChainHandle, mode: int) -> None:
    hostile_art = compile_test_contracts()["HostileRegistry"]
    ledger_art = compile_contracts()["SettlementLedger"]
    op = client.operator
    assert op is not None and client.relayer is not None
    registry = _deploy(op, hostile_art["bytecode"])
    ledger = _deploy(op, ledger_art.bytecode, ["address", "address"], [op.address, registry])
    grant = "grantRole(bytes32,address)"
    for who in (client.relayer.address, registry):  # the hostile registry is a relayer: the worst case
        op.transact(ledger, encode_call(grant, ["bytes32", "address"], [RELAYER_ROLE, who]), gas=120_000)
    debtor, creditor = Bank(Account.create(), "EVILUS33XXX", "US"), Bank(Account.create(), "EVILDEFFXXX", "DE")
    for bank in (debtor, creditor):
        op.transact(registry, encode_call("register(address,bytes11)", ["address", "bytes11"],
                                          [bank.address, bank.bic.encode()]), gas=100_000)
    op.transact(ledger, encode_call("fund(address,bytes3,uint256,bytes32)", ["address", "bytes3", "uint256", "bytes32"],
                                    [debtor.address, b"USD", 200, b"\0" * 32]), gas=150_000)
    # 200 covers the payment twice: only the single-use rule can stop a second settlement
    order = PaymentOrder(uetr=uuid.uuid4().bytes, debtor=debtor.address, creditor=creditor.address, currency=b"USD",
                         amount=60, flags=0, deadline=int(time.time()) + 3600, instruction_hash=b"\1" * 32)
    signature = sign_order(debtor.account.key, order, chain.chain_id, ledger)
    arm = f"arm(address,uint8,{'(bytes16,address,address,bytes3,uint256,uint8,uint64,bytes32)'},bytes)"
    op.transact(registry, encode_call(arm, ["address", "uint8", "(bytes16,address,address,bytes3,uint256,uint8,"
                                            "uint64,bytes32)", "bytes"], [ledger, mode, order.as_tuple(), signature]),
                gas=400_000)

    receipt = client.relayer.transact(ledger, LedgerClient.encode_batch([order], [signature]), gas=3_000_000,
                                      simulate=False)

    def balance(who: str) -> int:
        return int.from_bytes(_view(chain, ledger, "balanceOf(address,bytes3)", ["address", "bytes3"], [who, b"USD"]),
                              "big")
    settled = _logs(receipt, SETTLED_TOPIC, ledger)
    status = int.from_bytes(_view(chain, ledger, "paymentStatus(bytes16)", ["bytes16"], [order.uetr]), "big")
    if mode == 1:  # the registry lies "active" after its replay failed: the order settles once
        assert len(settled) == 1
        assert (balance(debtor.address), balance(creditor.address), status) == (140, 60, 2)
    else:  # the registry reports whether its replay worked: it did not, so the order is rejected
        assert settled == []
        assert (balance(debtor.address), balance(creditor.address), status) == (200, 0, 4)
    supply = int.from_bytes(_view(chain, ledger, "totalSupply(bytes3)", ["bytes3"], [b"USD"]), "big")
    assert balance(debtor.address) + balance(creditor.address) == supply == 200
    if mode == 1:
        # Control: the very same replay, made by a plain transaction (CALL, not STATICCALL), does
        # pay. So what stopped it above is that the ledger reaches the registry read-only.
        fresh = PaymentOrder(uuid.uuid4().bytes, debtor.address, creditor.address, b"USD", 60, 0,
                             int(time.time()) + 3600, b"\4" * 32)
        fresh_sig = sign_order(debtor.account.key, fresh, chain.chain_id, ledger)
        op.transact(registry, encode_call(arm, ["address", "uint8", "(bytes16,address,address,bytes3,uint256,uint8,"
                                                "uint64,bytes32)", "bytes"], [ledger, 1, fresh.as_tuple(), fresh_sig]),
                    gas=400_000)
        direct = op.transact(registry, encode_call("areActive(address,address)", ["address", "address"],
                                                   [debtor.address, creditor.address]), gas=3_000_000, simulate=False)
        assert len(_logs(direct, SETTLED_TOPIC, ledger)) == 1
        assert balance(debtor.address) == 80


def test_honest_registry_double_settles_nothing_either(client: LedgerClient, chain: ChainHandle) -> None:
    """Control for the test above: mode 0 (no re-entry) settles once, as any registry would."""
    hostile_art = compile_test_contracts()["HostileRegistry"]
    ledger_art = compile_contracts()["SettlementLedger"]
    op, rel = client.operator, client.relayer
    assert op is not None and rel is not None
    registry = _deploy(op, hostile_art["bytecode"])
    ledger = _deploy(op, ledger_art.bytecode, ["address", "address"], [op.address, registry])
    op.transact(ledger, encode_call("grantRole(bytes32,address)", ["bytes32", "address"], [RELAYER_ROLE, rel.address]),
                gas=120_000)
    a, b = Account.create(), Account.create()
    for acct, bic in ((a, b"OKAYUS33XXX"), (b, b"OKAYDEFFXXX")):
        op.transact(registry, encode_call("register(address,bytes11)", ["address", "bytes11"], [acct.address, bic]),
                    gas=100_000)
    op.transact(ledger, encode_call("fund(address,bytes3,uint256,bytes32)", ["address", "bytes3", "uint256", "bytes32"],
                                    [a.address, b"USD", 200, b"\0" * 32]), gas=150_000)
    order = PaymentOrder(uuid.uuid4().bytes, a.address, b.address, b"USD", 60, 0, int(time.time()) + 3600, b"\2" * 32)
    sig = sign_order(a.key, order, chain.chain_id, ledger)
    first = rel.transact(ledger, LedgerClient.encode_batch([order], [sig]), gas=1_000_000, simulate=False)
    again = rel.transact(ledger, LedgerClient.encode_batch([order, order], [sig, sig]), gas=1_000_000, simulate=False)
    assert len(_logs(first, SETTLED_TOPIC, ledger)) == 1 and _logs(again, SETTLED_TOPIC, ledger) == []


# --------------------------------------------------------------------------- roles
ESCALATIONS = [("ledger", r) for r in (ADMIN, OPERATOR_ROLE, RELAYER_ROLE, FX_SETTLER_ROLE)] + [
    ("registry", r) for r in (ADMIN, REGISTRAR_ROLE)]


@pytest.mark.parametrize(("contract", "role"), ESCALATIONS,
                         ids=[f"{c}-{r.hex()[:8]}" for c, r in ESCALATIONS])
@pytest.mark.parametrize("who", ["bank", "relayer", "stranger"])
def test_nobody_but_the_admin_grants_a_role(client: LedgerClient, make_bank: Callable[..., Bank],
                                            call_as: Callable[..., Any], reverts: Any, stranger: Any,
                                            contract: str, role: bytes, who: str) -> None:
    account = {"bank": lambda: make_bank().account, "relayer": lambda: client.relayer,
               "stranger": lambda: stranger}[who]()
    address = account.address
    target = client.ledger if contract == "ledger" else client.registry
    had = client.has_role(target, role, address)  # the relayer holds RELAYER_ROLE already
    with reverts("AccessControlUnauthorizedAccount", account=address, neededRole=ADMIN):
        call_as(account, contract, "grantRole(bytes32,address)", [role, address])
    assert client.has_role(target, role, address) is had


@pytest.mark.parametrize("signature,args,role", [
    ("fund(address,bytes3,uint256,bytes32)", lambda b: [b, b"USD", 10**9, b"\0" * 32], OPERATOR_ROLE),
    ("defund(address,bytes3,uint256,bytes32)", lambda b: [b, b"USD", 1, b"\0" * 32], OPERATOR_ROLE),
    ("setLimits(address,bytes3,uint128,uint128)", lambda b: [b, b"USD", 0, 0], OPERATOR_ROLE),
    ("pause()", lambda b: [], OPERATOR_ROLE),
], ids=["fund", "defund", "setLimits", "pause"])
def test_the_relayer_cannot_fund_or_administer(client: LedgerClient, make_bank: Callable[..., Bank],
                                               call_as: Callable[..., Any], reverts: Any, signature: str,
                                               args: Callable[[str], list[Any]], role: bytes) -> None:
    bank = make_bank(funds={"USD": 100})
    assert client.relayer is not None
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=role):
        call_as(client.relayer, "ledger", signature, args(bank.address))
    assert client.balance_of(bank.address, "USD") == 100


@pytest.mark.parametrize("who", ["bank", "relayer", "operator"])
def test_nobody_calls_the_fx_debit_entry_point_directly(client: LedgerClient, make_bank: Callable[..., Bank],
                                                        call_as: Callable[..., Any], reverts: Any, who: str) -> None:
    """settleFxLegs debits on the strength of signatures FxSettlement checked: FX_SETTLER_ROLE only."""
    victim, thief = make_bank(funds={"USD": 1_000}), make_bank(funds={"EUR": 1_000})
    account = {"bank": thief.account, "relayer": client.relayer, "operator": client.operator}[who]
    legs = (uuid.uuid4().bytes, victim.address, thief.address, thief.address, b"USD", 1_000, b"EUR", 1, b"\0" * 32,
            b"\0" * 32)
    with reverts("AccessControlUnauthorizedAccount", account=account.address, neededRole=FX_SETTLER_ROLE):
        call_as(account, "ledger", f"settleFxLegs({FX_LEGS},bytes4)", [legs, b"\0" * 4], gas=300_000)
    assert client.balance_of(victim.address, "USD") == 1_000


# ---------------------------------------------------------------------- malleability
def _high_s(signature: bytes) -> bytes:
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (N - s).to_bytes(32, "big") + bytes([55 - v])  # v 27 <-> 28


def test_high_s_twin_is_refused_on_chain_and_the_original_still_pays_once(
        client: LedgerClient, make_bank: Callable[..., Bank], make_order: Callable[..., Any],
        events: Callable[..., list[dict[str, Any]]], error_selector: Callable[[str], bytes]) -> None:
    a, b = make_bank(funds={"USD": 100}), make_bank()
    order, sig = make_order(a, b, 40)
    twin = _high_s(sig)
    receipt = client.settle_batch([order], [twin])
    assert events(receipt, "PaymentRejected") == [{"uetr": order.uetr, "reason": error_selector("InvalidSignature")}]
    assert client.payment_status(order.uetr) == 0  # not consumed: the bank's real order still goes
    receipt = client.settle_batch([order, order], [sig, twin])
    assert len(events(receipt, "PaymentSettled")) == 1
    assert client.balance_of(a.address, "USD") == 60


def test_gateway_recover_signer_refuses_high_s_and_malformed_signatures(chain: ChainHandle,
                                                                       deployment: Deployment) -> None:
    key = Account.create()
    order = PaymentOrder(uuid.uuid4().bytes, key.address, Account.create().address, b"USD", 1, 0, 2**40, b"\3" * 32)
    sig = sign_order(key.key, order, chain.chain_id, deployment.ledger)
    digest = order_digest(order, chain.chain_id, deployment.ledger)
    assert recover_signer(digest, sig) == key.address
    assert recover_signer(digest, sig[:64] + bytes([sig[64] - 27])) == key.address  # v as 0/1 is the same key
    twin = _high_s(sig)
    from eth_keys import keys  # the twin is a valid signature by the same key for libraries that allow high s
    assert keys.Signature(vrs=(twin[64] - 27, int.from_bytes(twin[:32], "big"),
                               int.from_bytes(twin[32:64], "big"))).recover_public_key_from_msg_hash(
        digest).to_checksum_address() == key.address
    bad = {"high s": twin, "s = n": sig[:32] + N.to_bytes(32, "big") + sig[64:], "s = 0": sig[:32] + bytes(32) + sig[64:],
           "r = 0": bytes(32) + sig[32:], "v = 29": sig[:64] + b"\x1d", "64 bytes": sig[:64], "66 bytes": sig + b"\0"}
    for name, candidate in bad.items():
        with pytest.raises(InvalidSignature):
            recover_signer(digest, candidate)
        with pytest.raises(InvalidSignature):
            verify_order(order, candidate, chain.chain_id, deployment.ledger)
        assert name


# ------------------------------------------------------------------ upgrade and admin
def _opcodes(code: bytes) -> set[int]:
    """The opcodes of runtime bytecode, PUSH data skipped (stops at the CBOR metadata)."""
    seen, i = set(), 0
    metadata = int.from_bytes(code[-2:], "big") + 2 if len(code) > 2 else 0
    end = len(code) - metadata if 0 < metadata < len(code) else len(code)
    while i < end:
        op = code[i]
        seen.add(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return seen


def test_no_upgrade_path(client: LedgerClient, chain: ChainHandle, deployment: Deployment) -> None:
    delegatecall, selfdestruct, callcode = 0xF4, 0xFF, 0xF2
    for address in (client.ledger, client.registry):
        ops = _opcodes(bytes(chain.w3.eth.get_code(address)))
        assert not ops & {delegatecall, selfdestruct, callcode}, (address, ops & {delegatecall, selfdestruct, callcode})
        # EIP-1967 implementation and admin slots are empty: not a proxy
        for slot in ("0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc",
                     "0xb53127684a568b3173ae13b9f8a6016e243e63b6e8ee1178d6a717850b5d6103"):
            assert int.from_bytes(bytes(chain.w3.eth.get_storage_at(address, int(slot, 16))), "big") == 0
    names = {item.get("name") for abi in deployment.abi.values() for item in abi if item.get("type") == "function"}
    assert not names & {"upgradeTo", "upgradeToAndCall", "implementation", "changeAdmin", "initialize", "setRegistry",
                        "setCode", "kill", "destroy"}


def test_admin_transfer_then_renounce(client: LedgerClient, call_as: Callable[..., Any], reverts: Any,
                                      make_bank: Callable[..., Bank]) -> None:
    op = client.operator
    assert op is not None
    successor = Account.create()
    call_as(op, "ledger", "grantRole(bytes32,address)", [ADMIN, successor.address])
    call_as(op, "ledger", "renounceRole(bytes32,address)", [ADMIN, op.address])
    assert client.has_role(client.ledger, ADMIN, op.address) is False
    assert client.has_role(client.ledger, OPERATOR_ROLE, op.address) is True  # a separate role, kept
    with reverts("AccessControlUnauthorizedAccount", account=op.address, neededRole=ADMIN):
        call_as(op, "ledger", "grantRole(bytes32,address)", [RELAYER_ROLE, op.address])
    newcomer = Account.create()
    call_as(successor, "ledger", "grantRole(bytes32,address)", [RELAYER_ROLE, newcomer.address])
    assert client.has_role(client.ledger, RELAYER_ROLE, newcomer.address) is True
    # the successor renounces too: nobody can ever grant a role again; operations go on
    call_as(successor, "ledger", "renounceRole(bytes32,address)", [ADMIN, successor.address])
    with reverts("AccessControlUnauthorizedAccount", account=successor.address, neededRole=ADMIN):
        call_as(successor, "ledger", "grantRole(bytes32,address)", [OPERATOR_ROLE, successor.address])
    bank = make_bank(funds={"USD": 5})
    assert client.balance_of(bank.address, "USD") == 5  # the operator still funds


def test_renounce_only_ones_own_role(client: LedgerClient, call_as: Callable[..., Any], reverts: Any,
                                     stranger: Any) -> None:
    with reverts("AccessControlBadConfirmation"):
        call_as(stranger, "ledger", "renounceRole(bytes32,address)", [ADMIN, client.operator.address])
    assert client.has_role(client.ledger, ADMIN, client.operator.address) is True


def _fuzz_args(types: list[dict[str, Any]], bank: str, rnd: random.Random, uetrs: list[bytes]) -> list[Any]:
    def one(t: dict[str, Any]) -> Any:
        kind = t["type"]
        if kind.endswith("[]"):
            return [one({**t, "type": kind[:-2]}) for _ in range(rnd.randint(1, 2))]
        if kind == "tuple":
            return tuple(one(c) for c in t["components"])
        if kind == "address":
            return bank
        if kind.startswith("uint"):
            return rnd.choice([1, 5, 50, 100])
        if kind == "bytes16":
            return rnd.choice(uetrs)
        if kind == "bytes3":
            return b"USD"
        if kind == "bytes4":
            return rnd.choice([b"\0" * 4, b"\1\2\3\4"])
        if kind.startswith("bytes") and kind != "bytes":
            return bytes(rnd.getrandbits(8) for _ in range(int(kind[5:])))
        if kind == "bytes":
            return b"\0" * 65
        if kind == "bool":
            return rnd.choice([True, False])
        raise AssertionError(f"no fuzz value for {kind}")
    return [one(t) for t in types]


def _abi_type(t: dict[str, Any]) -> str:
    if t["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in t["components"]) + ")" + t["type"][5:]
    return str(t["type"])


def test_the_operator_debits_a_bank_only_by_defund(client: LedgerClient, deployment: Deployment,
                                                   make_bank: Callable[..., Bank], make_order: Callable[..., Any],
                                                   call_as: Callable[..., Any]) -> None:
    """Every state-changing ledger function, called by the operator with the bank in every
    address slot: the bank's balance falls only in a transaction that emits Defunded for it."""
    bank, other = make_bank(funds={"USD": 100}), make_bank(funds={"USD": 100})
    queued, _ = make_order(bank, other, 10_000, flags=1)  # a payment of the bank's waiting in the queue
    client.submit_payment(queued, _)
    uetrs = [queued.uetr, uuid.uuid4().bytes]
    rnd = random.Random(8)
    functions = [f for f in deployment.abi["SettlementLedger"]
                 if f.get("type") == "function" and f.get("stateMutability") in ("nonpayable", "payable")]
    assert len(functions) >= 15
    tried = debits = 0
    for fn in functions:
        for _ in range(3):
            before = client.balance_of(bank.address, "USD")
            signature = f"{fn['name']}({','.join(_abi_type(i) for i in fn['inputs'])})"
            try:
                receipt = call_as(client.operator, "ledger", signature,
                                  _fuzz_args(fn["inputs"], bank.address, rnd, uetrs), gas=1_000_000)
            except TransactionFailed:
                receipt = None
            tried += 1
            after = client.balance_of(bank.address, "USD")
            if after < before:
                debits += 1
                assert receipt is not None and fn["name"] == "defund", (signature, before, after)
                defunded = _logs(receipt, DEFUNDED_TOPIC, client.ledger)
                assert defunded and to_checksum_address("0x" + bytes(defunded[0]["topics"][1])[-20:].hex()) == bank.address
    assert tried >= 45 and debits >= 1  # defund did debit at least once, and only defund did
