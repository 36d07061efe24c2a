"""Deploy the registry and the ledger, grant roles, write the manifest; and the demo
bootstrap (4 banks in 3+ countries, an FX provider, an auditor, funded in 4 currencies).

Run as ``scripts/deploy`` (see the README). Deploying again to the same chain reuses the
deployment in the manifest when its code is still there, unless ``--force``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from decimal import Decimal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from chain_gateway.chain import ChainHandle, connect, make_web3
from chain_gateway.config import Settings, get_settings
from chain_gateway.errors import ConfigurationError, GatewayError
from chain_gateway.keys import KeyStore
from chain_gateway.ledger import ROLE_AUDITOR, ROLE_BANK, ROLE_FX_PROVIDER, Deployment, LedgerClient
from chain_gateway.toolchain import compile_contracts
from chain_gateway.transactions import TxSender, encode_call

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
RELAYER_ROLE = keccak(text="RELAYER_ROLE")
REGISTRAR_ROLE = keccak(text="REGISTRAR_ROLE")
FX_SETTLER_ROLE = keccak(text="FX_SETTLER_ROLE")
GAS_DEPLOY = 6_000_000
GAS_DEPLOY_FX = 3_000_000


def deploy_fx_contract(sender: TxSender, ledger: str) -> str:
    """Deploy FxSettlement for `ledger` and grant it FX_SETTLER_ROLE (the sender must be admin)."""
    from eth_abi import encode as abi_encode

    artifact = compile_contracts()["FxSettlement"]
    receipt = sender.transact(None, bytes.fromhex(artifact.bytecode[2:]) + abi_encode(["address"], [ledger]),
                              gas=GAS_DEPLOY_FX)
    address = to_checksum_address(receipt["contractAddress"])
    sender.transact(ledger, encode_call("grantRole(bytes32,address)", ["bytes32", "address"],
                                        [FX_SETTLER_ROLE, address]), gas=120_000)
    return address


def deploy(w3: Web3, deployer: LocalAccount, relayers: list[str], *, name: str, rpc_url: str | None,
           gas_price_wei: int | None = None) -> Deployment:
    """Deploy both contracts from `deployer` (who becomes operator) and grant RELAYER_ROLE."""
    artifacts = compile_contracts()
    sender = TxSender(w3, deployer, gas_price_wei=gas_price_wei)
    reg_art, led_art = artifacts["ParticipantRegistry"], artifacts["SettlementLedger"]
    from eth_abi import encode as abi_encode

    receipt = sender.transact(None, bytes.fromhex(reg_art.bytecode[2:]) + abi_encode(["address"], [deployer.address]),
                              gas=GAS_DEPLOY)
    registry = to_checksum_address(receipt["contractAddress"])
    deploy_block = int(receipt["blockNumber"])
    receipt = sender.transact(None, bytes.fromhex(led_art.bytecode[2:])
                              + abi_encode(["address", "address"], [deployer.address, registry]), gas=GAS_DEPLOY)
    ledger = to_checksum_address(receipt["contractAddress"])
    for relayer in relayers:
        sender.transact(ledger, encode_call("grantRole(bytes32,address)", ["bytes32", "address"],
                                            [RELAYER_ROLE, relayer]), gas=120_000)
    fx_settlement = deploy_fx_contract(sender, ledger)
    return Deployment(
        name=name, chain_id=int(w3.eth.chain_id), rpc_url=rpc_url, registry=registry, ledger=ledger,
        deploy_block=deploy_block, compiler_version=led_art.compiler_version, source_hash=led_art.source_hash,
        abi={"ParticipantRegistry": reg_art.abi, "SettlementLedger": led_art.abi,
             "FxSettlement": artifacts["FxSettlement"].abi},
        operator=to_checksum_address(deployer.address), relayers=[to_checksum_address(r) for r in relayers],
        fx_settlement=fx_settlement,
    )


def grant_relayer(w3: Web3, operator: LocalAccount, deployment: Deployment, relayer: str,
                  gas_price_wei: int | None = None) -> Deployment:
    """Give another gateway its own relayer account (one relayer per gateway instance)."""
    sender = TxSender(w3, operator, gas_price_wei=gas_price_wei)
    sender.transact(deployment.ledger, encode_call("grantRole(bytes32,address)", ["bytes32", "address"],
                                                   [RELAYER_ROLE, relayer]), gas=120_000)
    return replace(deployment, relayers=[*deployment.relayers, to_checksum_address(relayer)])


def is_live(w3: Web3, deployment: Deployment) -> bool:
    """The manifest's contracts exist on the connected chain."""
    try:
        return int(w3.eth.chain_id) == deployment.chain_id and len(w3.eth.get_code(to_checksum_address(deployment.ledger))) > 0
    except Exception:  # noqa: BLE001 - an unreachable chain is "not live" to the caller, who reports it
        return False


@dataclass(frozen=True)
class Roles:
    """The keys a deployment is administered and relayed with."""

    operator: LocalAccount
    relayer: LocalAccount


def roles_for(settings: Settings, chain: ChainHandle) -> Roles:
    """Operator and relayer keys: from settings, or the development accounts on a local chain."""
    def pick(secret: object, index: int, what: str) -> LocalAccount:
        if secret is not None:
            account: LocalAccount = Account.from_key(secret.get_secret_value())  # type: ignore[attr-defined]
            return account
        if chain.dev_keys:
            return chain.dev_keys[index]
        raise ConfigurationError(f"set SETTLEMENT_{what}_PRIVATE_KEY for a non-local chain")
    return Roles(operator=pick(settings.deployer_private_key, 0, "DEPLOYER"),
                 relayer=pick(settings.relayer_private_key, 1, "RELAYER"))


def ensure_deployment(settings: Settings, chain: ChainHandle, *, force: bool = False,
                      save: bool = True) -> Deployment:
    """The manifest's deployment when live on this chain, else a fresh one (saved)."""
    path = settings.deployment_file
    if not force and path.is_file():
        existing = Deployment.load(path)
        if is_live(chain.w3, existing):
            return existing
    roles = roles_for(settings, chain)
    deployment = deploy(chain.w3, roles.operator, [roles.relayer.address], name=settings.deployment_name,
                        rpc_url=chain.rpc_url, gas_price_wei=settings.gas_price_wei)
    if save:
        deployment.save(path)
    return deployment


DEMO_BANKS = [  # BIC, country, name
    ("DEMOUS33XXX", "US", "Demo Bank New York"),
    ("DEMODEFFXXX", "DE", "Demo Bank Frankfurt"),
    ("DEMOGB2LXXX", "GB", "Demo Bank London"),
    ("DEMOJPJTXXX", "JP", "Demo Bank Tokyo"),
]
DEMO_FX = ("DEMOSGSGXXX", "SG", "Demo FX Singapore")
DEMO_AUDITOR = ("DEMOCHZZXXX", "CH", "Demo Audit Zurich")
DEMO_FUNDING = {"USD": Decimal("10000000.00"), "EUR": Decimal("10000000.00"), "JPY": Decimal(1500000000),
                "GBP": Decimal("8000000.00")}
_EXPONENT = {"USD": 2, "EUR": 2, "JPY": 0, "GBP": 2}


@dataclass(frozen=True)
class DemoParticipant:
    bic: str
    country: str
    name: str
    roles: int
    address: str


def bootstrap_demo(client: LedgerClient, keystore: KeyStore) -> list[DemoParticipant]:
    """Register and fund the demo participants; their keys go to the gateway's keystore.

    Idempotent: a BIC already registered is left as it is (and not funded again).
    """
    created: list[DemoParticipant] = []
    plan = [(b, c, n, ROLE_BANK) for b, c, n in DEMO_BANKS] + [
        (*DEMO_FX, ROLE_BANK | ROLE_FX_PROVIDER), (*DEMO_AUDITOR, ROLE_AUDITOR)]
    for bic, country, name, roles in plan:
        existing = client.participant_of(bic)
        if existing is not None:
            created.append(DemoParticipant(bic, country, name, roles, existing))
            continue
        account = keystore.create()
        client.register(account.address, bic, country, roles)
        if roles & ROLE_BANK:
            for currency, amount in DEMO_FUNDING.items():
                minor = int(amount.scaleb(_EXPONENT[currency]))
                client.fund(account.address, currency, minor, keccak(text=f"DEMO-FUNDING-{bic}-{currency}"))
        created.append(DemoParticipant(bic, country, name, roles, to_checksum_address(account.address)))
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--rpc-url", help="JSON-RPC URL (default: http://127.0.0.1:8545, as `make chain` serves)",
                        default="http://127.0.0.1:8545")
    parser.add_argument("--name", default="local", help="deployment name: writes deployments/<name>.json")
    parser.add_argument("--force", action="store_true", help="deploy again even if the manifest is live")
    parser.add_argument("--bootstrap", action="store_true", help="register and fund the demo participants")
    args = parser.parse_args(argv)
    try:
        settings = get_settings(chain="rpc", rpc_url=args.rpc_url, deployment_name=args.name)
        chain = connect(settings)
        deployment = ensure_deployment(settings, chain, force=args.force)
        print(f"deployment '{deployment.name}' on chain {deployment.chain_id} ({args.rpc_url})")
        print(f"  ParticipantRegistry {deployment.registry}")
        print(f"  SettlementLedger    {deployment.ledger}  (deploy block {deployment.deploy_block})")
        print(f"  FxSettlement        {deployment.fx_settlement}")
        print(f"  manifest            {settings.deployment_file}")
        if args.bootstrap:
            roles = roles_for(settings, chain)
            w3 = make_web3(args.rpc_url)
            client = LedgerClient(w3, deployment, operator=TxSender(w3, roles.operator,
                                                                    gas_price_wei=settings.gas_price_wei))
            keystore = KeyStore(settings.keystore_dir, settings.keystore_passphrase.get_secret_value(),
                                production=settings.environment == "production")
            participants = bootstrap_demo(client, keystore)
            deployment = replace(deployment, participants={p.bic: p.address for p in participants})
            deployment.save(settings.deployment_file)
            for p in participants:
                print(f"  {p.bic}  {p.country}  {p.address}  {p.name}")
    except GatewayError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
