"""EIP-712 payment orders on-chain: the digest matches the gateway's and a wallet's, and no
forged, altered, replayed or malleated signature moves money."""
from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import keys
from eth_utils import keccak

from chain_gateway.deploy import deploy
from chain_gateway.errors import InvalidSignature as GatewayInvalidSignature
from chain_gateway.ledger import ROLE_BANK, LedgerClient
from chain_gateway.signing import PAYMENT_ORDER_TYPE, PaymentOrder, order_digest, recover_signer, sign_order, typed_data
from chain_gateway.transactions import TxSender

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECOND_DEPLOYER_INDEX = 3  # a dev account no other fixture signs with


def _eip191_digest(signable) -> bytes:
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


# --------------------------------------------------------------------- digest
def test_hash_payment_order_equals_gateway_and_eth_account_digests(client, chain, make_bank, make_order):
    a, b = make_bank(), make_bank()
    order, _ = make_order(a, b, 123_456, "EUR", flags=3)
    on_chain = client.hash_payment_order(order)
    assert on_chain == order_digest(order, chain.chain_id, client.ledger)
    assert on_chain == _eip191_digest(encode_typed_data(full_message=typed_data(order, chain.chain_id, client.ledger)))


def test_hash_payment_order_depends_on_every_field(client, make_bank, make_order):
    a, b, c = make_bank(), make_bank(), make_bank()
    order, _ = make_order(a, b, 100)
    variants = [dataclasses.replace(order, **{name: value}) for name, value in _field_changes(order, c).items()]
    digests = {client.hash_payment_order(v) for v in [order, *variants]}
    assert len(digests) == len(variants) + 1


def test_payment_order_typehash_and_domain_match_contracts_md(contracts, chain, client):
    ledger = contracts["ledger"].functions
    assert ledger.PAYMENT_ORDER_TYPEHASH().call() == keccak(text=PAYMENT_ORDER_TYPE)
    _fields, name, version, chain_id, verifying_contract, _salt, _ext = ledger.eip712Domain().call()
    assert (name, version, chain_id, verifying_contract) == ("SettlementLedger", "1", chain.chain_id, client.ledger)


def test_submit_payment_accepts_order_signed_by_wallet_typed_data(client, chain, make_bank, make_order):
    # a bank signing with its own tooling (eth_signTypedData_v4) produces an accepted signature
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, _ = make_order(a, b, 250)
    signed = Account.sign_message(encode_typed_data(full_message=typed_data(order, chain.chain_id, client.ledger)),
                                  a.account.key)
    client.submit_payment(order, bytes(signed.signature))
    assert client.balance_of(b.address, "USD") == 250


# ------------------------------------------------------------------- forgeries
def _field_changes(order: PaymentOrder, other) -> dict[str, object]:
    """A changed value for every signed field (each leaves the order otherwise valid)."""
    return {
        "uetr": bytes(reversed(order.uetr)),
        "debtor": other.address,
        "creditor": other.address,
        "currency": b"EUR",
        "amount": order.amount + 1,
        "flags": order.flags ^ 1,
        "deadline": order.deadline + 60,
        "instruction_hash": keccak(order.instruction_hash),
    }


def test_submit_payment_reverts_invalid_signature_signed_by_another_key(client, make_bank, make_order, reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 100, signer=Account.create())
    with reverts("InvalidSignature"):
        client.submit_payment(order, sig)
    assert client.balance_of(a.address, "USD") == 1_000


@pytest.mark.parametrize("field", ["uetr", "debtor", "creditor", "currency", "amount", "flags", "deadline",
                                   "instruction_hash"])
def test_submit_payment_reverts_invalid_signature_when_field_changed_after_signing(client, make_bank, make_order,
                                                                                  reverts, field):
    a = make_bank(funds={"USD": 1_000, "EUR": 1_000})
    b = make_bank()
    c = make_bank(funds={"USD": 1_000, "EUR": 1_000})  # a funded, active alternative debtor/creditor
    order, sig = make_order(a, b, 100)
    tampered = dataclasses.replace(order, **{field: _field_changes(order, c)[field]})
    with reverts("InvalidSignature"):
        client.submit_payment(tampered, sig)
    assert client.payment_status(tampered.uetr) == 0
    for bank in (a, b, c):
        assert client.balance_of(bank.address, "USD") == (0 if bank is b else 1_000)
    client.submit_payment(order, sig)  # the genuine order is still good
    assert client.payment_status(order.uetr) == 2


def test_settle_batch_rejects_tampered_item_without_consuming_uetr(client, make_bank, make_order, events,
                                                                   error_selector):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 100)
    tampered = dataclasses.replace(order, amount=900)
    receipt = client.settle_batch([tampered], [sig])
    assert events(receipt, "PaymentRejected") == [{"uetr": order.uetr, "reason": error_selector("InvalidSignature")}]
    assert client.payment_status(order.uetr) == 0
    client.submit_payment(order, sig)
    assert client.balance_of(b.address, "USD") == 100


def test_submit_payment_reverts_invalid_signature_for_other_chain_id(client, chain, make_bank, make_order, reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 100, chain_id=chain.chain_id + 1)
    with reverts("InvalidSignature"):
        client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 0


def test_submit_payment_reverts_invalid_signature_for_other_ledger_contract(client, chain, make_bank, make_order,
                                                                             reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    deployer = chain.dev_keys[SECOND_DEPLOYER_INDEX]
    second = deploy(chain.w3, deployer, [client.relayer.address], name="second", rpc_url=None)
    other = LedgerClient(chain.w3, second, operator=TxSender(chain.w3, deployer), relayer=client.relayer)
    for bank in (a, b):
        other.register(bank.address, bank.bic, bank.country, ROLE_BANK)
    other.fund(a.address, "USD", 1_000, b"\0" * 32)

    for_second, sig_second = make_order(a, b, 100, ledger=second.ledger)
    with reverts("InvalidSignature"):
        client.submit_payment(for_second, sig_second)
    for_first, sig_first = make_order(a, b, 100)
    with reverts("InvalidSignature"):
        other.submit_payment(for_first, sig_first)

    other.submit_payment(for_second, sig_second)  # each order is good on its own ledger only
    assert other.balance_of(b.address, "USD") == 100
    assert client.balance_of(b.address, "USD") == 0
    assert client.payment_status(for_second.uetr) == 0


def test_submit_payment_reverts_invalid_signature_for_malleated_high_s(client, chain, make_bank, make_order,
                                                                        reverts):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 100)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = SECP256K1_N - s
    malleated = r + high_s.to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    # the twin is a mathematically valid signature by the debtor ...
    digest = order_digest(order, chain.chain_id, client.ledger)
    twin = keys.Signature(vrs=(malleated[64] - 27, int.from_bytes(r, "big"), high_s))
    assert twin.recover_public_key_from_msg_hash(digest).to_checksum_address() == a.address
    # ... that both the contract and the gateway refuse
    with reverts("InvalidSignature"):
        client.submit_payment(order, malleated)
    with pytest.raises(GatewayInvalidSignature):
        recover_signer(digest, malleated)
    assert client.payment_status(order.uetr) == 0


@pytest.mark.parametrize("case", ["empty", "64-byte compact", "66 bytes", "v is 0 or 1", "all zero"])
def test_submit_payment_reverts_invalid_signature_for_malformed_signature(client, make_bank, make_order, reverts,
                                                                          case):
    a, b = make_bank(funds={"USD": 1_000}), make_bank()
    order, sig = make_order(a, b, 100)
    if case == "empty":
        bad = b""
    elif case == "64-byte compact":  # EIP-2098 r || (v-27)<<255 | s
        vs = ((sig[64] - 27) << 255) | int.from_bytes(sig[32:64], "big")
        bad = sig[:32] + vs.to_bytes(32, "big")
    elif case == "66 bytes":
        bad = sig + b"\0"
    elif case == "v is 0 or 1":
        bad = sig[:64] + bytes([sig[64] - 27])
    else:
        bad = b"\0" * 65
    with reverts("InvalidSignature"):
        client.submit_payment(order, bad)
    assert client.payment_status(order.uetr) == 0


def test_sign_order_is_deterministic_and_verifies(chain, client, make_bank, make_order):
    a, b = make_bank(), make_bank()
    order, sig = make_order(a, b, 100)
    assert sign_order(a.account.key, order, chain.chain_id, client.ledger) == sig  # RFC 6979
    assert recover_signer(order_digest(order, chain.chain_id, client.ledger), sig) == a.address
