"""Deploy to a managed anvil, pay, read the balance back with LedgerClient and foundry's
cast, restart anvil on its state file and find the same state; and the zero-gas-price path a
permissioned network uses (a key with no ETH can transact)."""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from chain_gateway.chain import AnvilProcess, anvil_binary, dev_accounts, make_web3
from chain_gateway.config import Settings
from chain_gateway.deploy import deploy
from chain_gateway.ledger import ROLE_BANK, Deployment, LedgerClient
from chain_gateway.signing import PaymentOrder, sign_order
from chain_gateway.transactions import TransactionFailed, TxSender, encode_call

pytestmark = pytest.mark.anvil
OPERATOR, RELAYER = 0, 1  # dev account indexes
USD_HEX = "0x555344"


def _gone(pid: int) -> bool:
    """The process is neither running nor a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return status.is_file() and "\nState:\tZ" in status.read_text()


@pytest.fixture
def anvils(settings: Settings) -> Iterator[list[AnvilProcess]]:
    """Every anvil a test starts goes in this list; each is stopped, and its pid checked gone."""
    started: list[AnvilProcess] = []
    yield started
    pids = [a.pid for a in started if a.pid is not None]
    for anvil in started:
        anvil.stop()
    assert all(_gone(pid) for pid in pids), f"anvil left running: {[p for p in pids if not _gone(p)]}"


def _start(settings: Settings, anvils: list[AnvilProcess], state_file: Path | None, tmp_path: Path) -> AnvilProcess:
    anvil = AnvilProcess(anvil_binary(settings.project_root), port=None, state_file=state_file, state_interval=1,
                         log_file=tmp_path / "anvil.log")
    anvils.append(anvil)
    return anvil


def _cast(settings: Settings, *args: str) -> str:
    cast = settings.project_root / "node_modules" / ".bin" / "cast"
    out = subprocess.run([str(cast), *args], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def _cast_balance(settings: Settings, deployment: Deployment, participant: str, rpc_url: str) -> int:
    # cast may annotate large numbers ("12345 [1.234e4]"): keep the plain integer
    raw = _cast(settings, "call", deployment.ledger, "balanceOf(address,bytes3)(uint256)", participant, USD_HEX,
                "--rpc-url", rpc_url)
    return int(raw.split()[0])


def _client(w3: Web3, deployment: Deployment) -> LedgerClient:
    keys = dev_accounts()
    return LedgerClient(w3, deployment, operator=TxSender(w3, keys[OPERATOR]), relayer=TxSender(w3, keys[RELAYER]))


def _order(w3: Web3, deployment: Deployment, debtor, creditor: str, amount: int, flags: int = 0):
    order = PaymentOrder(uetr=uuid.uuid4().bytes, debtor=debtor.address, creditor=creditor, currency=b"USD",
                         amount=amount, flags=flags, deadline=int(w3.eth.get_block("latest")["timestamp"]) + 3600,
                         instruction_hash=keccak(text=f"instruction {amount}"))
    return order, sign_order(debtor.key, order, deployment.chain_id, deployment.ledger)


def test_anvil_deploy_pay_and_state_survives_restart(settings, tmp_path, anvils):
    state_file = tmp_path / "anvil-state.json"
    anvil = _start(settings, anvils, state_file, tmp_path)
    w3 = make_web3(anvil.url)
    keys = dev_accounts()
    deployment = deploy(w3, keys[OPERATOR], [keys[RELAYER].address], name="anvil-it", rpc_url=anvil.url)
    assert deployment.chain_id == 31337
    client = _client(w3, deployment)
    debtor, creditor = Account.create(), Account.create()
    client.register(debtor.address, "ANVLUS33", "US", ROLE_BANK)
    client.register(creditor.address, "ANVLDEFF", "DE", ROLE_BANK)
    client.fund(debtor.address, "USD", 100_000, keccak(text="anvil funding"))

    order, sig = _order(w3, deployment, debtor, creditor.address, 25_000)
    receipt = client.submit_payment(order, sig)

    ledger = w3.eth.contract(address=deployment.ledger, abi=deployment.abi["SettlementLedger"])
    settled = ledger.events.PaymentSettled().process_receipt(receipt)
    assert [(e["args"]["uetr"], e["args"]["amount"]) for e in settled] == [(order.uetr, 25_000)]
    assert client.balance_of(creditor.address, "USD") == 25_000
    assert _cast_balance(settings, deployment, creditor.address, anvil.url) == 25_000
    assert _cast_balance(settings, deployment, debtor.address, anvil.url) == 75_000
    height = w3.eth.block_number

    pid = anvil.pid
    anvil.stop()  # SIGTERM: anvil writes its state file
    assert pid is not None and _gone(pid)
    assert state_file.is_file() and state_file.stat().st_size > 0

    restarted = _start(settings, anvils, state_file, tmp_path)
    w3b = make_web3(restarted.url)
    again = _client(w3b, deployment)
    assert w3b.eth.block_number == height
    assert again.balance_of(creditor.address, "USD") == 25_000
    assert again.balance_of(debtor.address, "USD") == 75_000
    assert again.total_supply("USD") == 100_000
    assert again.payment_status(order.uetr) == 2
    assert again.participant_of("ANVLUS33") == debtor.address
    assert _cast_balance(settings, deployment, creditor.address, restarted.url) == 25_000
    # the chain carries on from there: nonces, UETR history and balances all persisted
    with pytest.raises(TransactionFailed) as replay:
        again.submit_payment(order, sig)
    assert (replay.value.error_name, replay.value.error_args) == ("DuplicateUetr", {"uetr": order.uetr})
    second, sig2 = _order(w3b, deployment, debtor, creditor.address, 5_000)
    again.submit_payment(second, sig2)
    assert again.balance_of(creditor.address, "USD") == 30_000
    assert w3b.eth.block_number == height + 1


def test_anvil_zero_gas_price_lets_key_without_eth_transact(settings, tmp_path, anvils):
    anvil = _start(settings, anvils, None, tmp_path)
    w3 = make_web3(anvil.url)
    assert int(w3.eth.get_block("latest")["baseFeePerGas"]) == 0

    fresh = Account.create()
    assert w3.eth.get_balance(fresh.address) == 0
    receipt = TxSender(w3, fresh).transact(fresh.address, b"", gas=21_000)
    assert receipt["status"] == 1
    assert int(receipt["effectiveGasPrice"]) == 0
    assert w3.eth.get_balance(fresh.address) == 0

    # the use that matters: a bank with no ETH cancels its own queued payment itself
    keys = dev_accounts()
    deployment = deploy(w3, keys[OPERATOR], [keys[RELAYER].address], name="anvil-zero-gas", rpc_url=anvil.url)
    client = _client(w3, deployment)
    debtor, creditor = Account.create(), Account.create()
    client.register(debtor.address, "ZGASUS33", "US", ROLE_BANK)
    client.register(creditor.address, "ZGASDEFF", "DE", ROLE_BANK)
    order, sig = _order(w3, deployment, debtor, creditor.address, 500, flags=1)
    client.submit_payment(order, sig)
    assert client.payment_status(order.uetr) == 1
    own = TxSender(w3, debtor, decoder=client.decoder)
    own.transact(deployment.ledger, encode_call("cancelQueued(bytes16)", ["bytes16"], [order.uetr]), gas=100_000)
    assert client.payment_status(order.uetr) == 3
    assert w3.eth.get_balance(debtor.address) == 0


def test_anvil_stop_leaves_no_process(settings):
    anvil = AnvilProcess(anvil_binary(settings.project_root), port=None, state_file=None, state_interval=1)
    pid = anvil.pid
    assert pid is not None and not _gone(pid)
    anvil.stop()
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
    anvil.stop()  # idempotent
