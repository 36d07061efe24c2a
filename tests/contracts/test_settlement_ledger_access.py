"""Access control of both contracts: every restricted function refuses an unprivileged key,
and no bank or relayer can grant itself (or anyone) a role."""
from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from chain_gateway.signing import ORDER_ABI_TYPE

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
REGISTRAR_ROLE = keccak(text="REGISTRAR_ROLE")
DEFAULT_ADMIN_ROLE = b"\0" * 32
GRANT = "grantRole(bytes32,address)"
REF = b"\0" * 32
ZERO_ORDER = (b"\1" * 16, "0x" + "11" * 20, "0x" + "22" * 20, b"USD", 1, 0, 2**40, b"\0" * 32)

RESTRICTED = [  # contract, signature, args, role needed
    ("ledger", "fund(address,bytes3,uint256,bytes32)", lambda b: [b, b"USD", 1, REF], OPERATOR_ROLE),
    ("ledger", "defund(address,bytes3,uint256,bytes32)", lambda b: [b, b"USD", 1, REF], OPERATOR_ROLE),
    ("ledger", "setLimits(address,bytes3,uint128,uint128)", lambda b: [b, b"USD", 1, 1], OPERATOR_ROLE),
    ("ledger", "setBilateralLimit(address,address,bytes3,uint256)", lambda b: [b, b, b"USD", 1], OPERATOR_ROLE),
    ("ledger", "pause()", lambda b: [], OPERATOR_ROLE),
    ("ledger", "unpause()", lambda b: [], OPERATOR_ROLE),
    ("ledger", "settleGridlock(bytes16[])", lambda b: [[b"\1" * 16]], OPERATOR_ROLE),
    ("ledger", f"submitPayment({ORDER_ABI_TYPE},bytes)", lambda b: [ZERO_ORDER, b"\0" * 65], RELAYER_ROLE),
    ("ledger", f"settleBatch({ORDER_ABI_TYPE}[],bytes[])", lambda b: [[ZERO_ORDER], [b"\0" * 65]], RELAYER_ROLE),
    ("ledger", "settleQueued(bytes16[])", lambda b: [[b"\1" * 16]], RELAYER_ROLE),
    ("registry", "register(address,bytes11,bytes2,uint8)", lambda b: [Account.create().address, b"X" * 11, b"US", 1],
     REGISTRAR_ROLE),
    ("registry", "suspend(address)", lambda b: [b], REGISTRAR_ROLE),
    ("registry", "reinstate(address)", lambda b: [b], REGISTRAR_ROLE),
]


@pytest.mark.parametrize(("contract", "signature", "args", "role"), RESTRICTED,
                         ids=[f"{c}.{s.split('(')[0]}" for c, s, _, _ in RESTRICTED])
def test_restricted_function_reverts_unauthorized_for_bank(client, make_bank, call_as, reverts, contract, signature,
                                                           args, role):
    bank = make_bank(funds={"USD": 100})
    with reverts("AccessControlUnauthorizedAccount", account=bank.address, neededRole=role):
        call_as(bank.account, contract, signature, args(bank.address))
    assert client.balance_of(bank.address, "USD") == 100


@pytest.mark.parametrize("role", [RELAYER_ROLE, OPERATOR_ROLE, DEFAULT_ADMIN_ROLE],
                         ids=["RELAYER_ROLE", "OPERATOR_ROLE", "DEFAULT_ADMIN_ROLE"])
def test_grant_role_reverts_when_bank_grants_itself(client, make_bank, call_as, reverts, role):
    bank = make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=bank.address, neededRole=DEFAULT_ADMIN_ROLE):
        call_as(bank.account, "ledger", GRANT, [role, bank.address])
    assert client.has_role(client.ledger, role, bank.address) is False


def test_grant_role_reverts_when_relayer_escalates_to_operator(client, call_as, reverts):
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=DEFAULT_ADMIN_ROLE):
        call_as(client.relayer, "ledger", GRANT, [OPERATOR_ROLE, client.relayer.address])
    assert client.has_role(client.ledger, OPERATOR_ROLE, client.relayer.address) is False


def test_grant_role_reverts_when_relayer_recruits_a_bank(client, make_bank, call_as, reverts):
    bank = make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=DEFAULT_ADMIN_ROLE):
        call_as(client.relayer, "ledger", GRANT, [RELAYER_ROLE, bank.address])
    assert client.has_role(client.ledger, RELAYER_ROLE, bank.address) is False


def test_revoke_role_reverts_when_bank_revokes_the_relayer(client, make_bank, call_as, reverts):
    bank = make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=bank.address, neededRole=DEFAULT_ADMIN_ROLE):
        call_as(bank.account, "ledger", "revokeRole(bytes32,address)", [RELAYER_ROLE, client.relayer.address])
    assert client.has_role(client.ledger, RELAYER_ROLE, client.relayer.address) is True


def test_renounce_role_reverts_bad_confirmation_for_someone_else(client, make_bank, call_as, reverts):
    bank = make_bank()
    with reverts("AccessControlBadConfirmation"):
        call_as(bank.account, "ledger", "renounceRole(bytes32,address)", [RELAYER_ROLE, client.relayer.address])
    assert client.has_role(client.ledger, RELAYER_ROLE, client.relayer.address) is True


def test_grant_role_by_admin_makes_a_working_relayer(client, make_bank, make_order, call_as, events):
    a, b = make_bank(funds={"USD": 100}), make_bank()
    new_relayer = Account.create()
    receipt = call_as(client.operator, "ledger", GRANT, [RELAYER_ROLE, new_relayer.address])
    assert events(receipt, "RoleGranted") == [{"role": RELAYER_ROLE, "account": new_relayer.address,
                                               "sender": client.operator.address}]
    order, sig = make_order(a, b, 100)
    call_as(new_relayer, "ledger", f"submitPayment({ORDER_ABI_TYPE},bytes)", [order.as_tuple(), sig], gas=250_000)
    assert client.payment_status(order.uetr) == 2


def test_roles_are_held_as_deployed(client, contracts):
    ledger = contracts["ledger"].functions
    assert ledger.OPERATOR_ROLE().call() == OPERATOR_ROLE
    assert ledger.RELAYER_ROLE().call() == RELAYER_ROLE
    op, rel = client.operator.address, client.relayer.address
    assert [client.has_role(client.ledger, r, op) for r in (DEFAULT_ADMIN_ROLE, OPERATOR_ROLE, RELAYER_ROLE)] == [
        True, True, False]
    assert [client.has_role(client.ledger, r, rel) for r in (DEFAULT_ADMIN_ROLE, OPERATOR_ROLE, RELAYER_ROLE)] == [
        False, False, True]
    assert contracts["ledger"].functions.registry().call() == client.registry
