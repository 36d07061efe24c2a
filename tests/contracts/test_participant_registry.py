"""ParticipantRegistry: register, suspend, reinstate, every view, every custom error."""
from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from chain_gateway.ledger import ROLE_AUDITOR, ROLE_BANK, ROLE_FX_PROVIDER
from chain_gateway.transactions import encode_call

REGISTER = "register(address,bytes11,bytes2,uint8)"
ZERO_ADDRESS = "0x" + "00" * 20
REGISTRAR_ROLE = keccak(text="REGISTRAR_ROLE")
DEFAULT_ADMIN_ROLE = b"\0" * 32


def _register_raw(call_as, client, participant, bic: bytes, country: bytes, roles: int):
    return call_as(client.operator, "registry", REGISTER, [participant, bic, country, roles])


def _registry_view(contracts, name, *args):
    return getattr(contracts["registry"].functions, name)(*args).call()


# ------------------------------------------------------------------ register
def test_register_emits_participant_registered_and_fills_every_view(client, events, contracts):
    account = Account.create()
    count_before = client.participant_count()

    receipt = client.register(account.address, "BANKDEFF", "DE", ROLE_BANK | ROLE_FX_PROVIDER)

    assert events(receipt, "ParticipantRegistered", "registry") == [{
        "participant": account.address, "bic": b"BANKDEFFXXX", "country": b"DE",
        "roles": ROLE_BANK | ROLE_FX_PROVIDER}]
    assert client.participant_of("BANKDEFFXXX") == account.address
    assert client.participant_of("BANKDEFF") == account.address  # BIC8 is BIC11 with XXX
    assert client.bic_of(account.address) == b"BANKDEFFXXX"
    assert client.is_active(account.address) is True
    assert client.roles_of(account.address) == ROLE_BANK | ROLE_FX_PROVIDER
    assert _registry_view(contracts, "countryOf", account.address) == b"DE"
    assert client.participant_count() == count_before + 1
    assert client.participant_at(count_before) == account.address


def test_register_keeps_registration_order_in_participant_at(client, make_bank):
    start = client.participant_count()
    banks = [make_bank("US"), make_bank("GB"), make_bank("JP")]
    assert client.participant_count() == start + 3
    assert [client.participant_at(start + i) for i in range(3)] == [b.address for b in banks]


@pytest.mark.parametrize("roles", [ROLE_BANK, ROLE_FX_PROVIDER, ROLE_AUDITOR,
                                   ROLE_BANK | ROLE_FX_PROVIDER | ROLE_AUDITOR])
def test_register_accepts_every_known_role_set(client, roles):
    account = Account.create()
    client.register(account.address, "ROLECHZZ", "CH", roles)
    assert client.roles_of(account.address) == roles


@pytest.mark.parametrize(("case", "participant", "bic", "country", "roles"), [
    ("zero address", ZERO_ADDRESS, b"BANKUS33XXX", b"US", ROLE_BANK),
    ("zero bic", None, b"\0" * 11, b"US", ROLE_BANK),
    ("zero country", None, b"BANKUS33XXX", b"\0\0", ROLE_BANK),
    ("no roles", None, b"BANKUS33XXX", b"US", 0),
    ("unknown role bit", None, b"BANKUS33XXX", b"US", 8),
    ("known and unknown role bits", None, b"BANKUS33XXX", b"US", ROLE_BANK | 0x80),
])
def test_register_reverts_invalid_participant(client, call_as, reverts, case, participant, bic, country, roles):
    participant = participant or Account.create().address
    count = client.participant_count()
    with reverts("InvalidParticipant", participant=participant, bic=bic, country=country, roles=roles):
        _register_raw(call_as, client, participant, bic, country, roles)
    assert client.participant_count() == count


def test_register_reverts_participant_already_registered(client, make_bank, reverts):
    bank = make_bank()
    with reverts("ParticipantAlreadyRegistered", participant=bank.address):
        client.register(bank.address, "OTHRUS33", "US", ROLE_BANK)
    assert client.participant_of("OTHRUS33") is None


def test_register_reverts_bic_already_registered(client, make_bank, reverts):
    holder = make_bank()
    newcomer = Account.create()
    with reverts("BicAlreadyRegistered", bic=holder.bic.encode(), holder=holder.address):
        client.register(newcomer.address, holder.bic, "US", ROLE_BANK)
    assert client.bic_of(newcomer.address) == b"\0" * 11
    assert client.is_active(newcomer.address) is False


@pytest.mark.parametrize("who", ["relayer", "bank"])
def test_register_reverts_unauthorized_for_non_registrar(client, make_bank, call_as, reverts, who):
    sender = client.relayer if who == "relayer" else make_bank().account
    caller = client.relayer.address if who == "relayer" else sender.address
    newcomer = Account.create().address
    with reverts("AccessControlUnauthorizedAccount", account=caller, neededRole=REGISTRAR_ROLE):
        call_as(sender, "registry", REGISTER, [newcomer, b"SNEAKY22XXX", b"US", ROLE_BANK])
    assert client.is_active(newcomer) is False


@pytest.mark.parametrize("action", ["suspend(address)", "reinstate(address)"])
def test_status_change_reverts_unauthorized_for_non_registrar(client, make_bank, call_as, reverts, action):
    victim = make_bank()
    if action.startswith("reinstate"):
        client.suspend(victim.address)
    with reverts("AccessControlUnauthorizedAccount", account=client.relayer.address, neededRole=REGISTRAR_ROLE):
        call_as(client.relayer, "registry", action, [victim.address])


def test_grant_role_reverts_when_bank_grants_itself_registrar(client, make_bank, call_as, reverts):
    bank = make_bank()
    with reverts("AccessControlUnauthorizedAccount", account=bank.address, neededRole=DEFAULT_ADMIN_ROLE):
        call_as(bank.account, "registry", "grantRole(bytes32,address)", [REGISTRAR_ROLE, bank.address])
    assert client.has_role(client.registry, REGISTRAR_ROLE, bank.address) is False


def test_registrar_role_constant_matches_keccak(contracts, client):
    assert contracts["registry"].functions.REGISTRAR_ROLE().call() == REGISTRAR_ROLE
    assert client.has_role(client.registry, REGISTRAR_ROLE, client.operator.address) is True
    assert client.has_role(client.registry, DEFAULT_ADMIN_ROLE, client.operator.address) is True


# ----------------------------------------------------------- suspend / reinstate
def test_suspend_emits_status_changed_and_deactivates(client, make_bank, events):
    bank = make_bank()
    receipt = client.suspend(bank.address)
    assert events(receipt, "ParticipantStatusChanged", "registry") == [{"participant": bank.address, "active": False}]
    assert client.is_active(bank.address) is False
    # suspension keeps the registration: BIC, roles and directory entry stay
    assert client.participant_of(bank.bic) == bank.address
    assert client.roles_of(bank.address) == ROLE_BANK


def test_reinstate_emits_status_changed_and_reactivates(client, make_bank, events):
    bank = make_bank()
    client.suspend(bank.address)
    receipt = client.reinstate(bank.address)
    assert events(receipt, "ParticipantStatusChanged", "registry") == [{"participant": bank.address, "active": True}]
    assert client.is_active(bank.address) is True


@pytest.mark.parametrize("action", ["suspend", "reinstate"])
def test_status_change_reverts_participant_unknown(client, reverts, action):
    unknown = Account.create().address
    with reverts("ParticipantUnknown", participant=unknown):
        getattr(client, action)(unknown)


def test_suspend_reverts_status_unchanged_when_already_suspended(client, make_bank, reverts):
    bank = make_bank()
    client.suspend(bank.address)
    with reverts("ParticipantStatusUnchanged", participant=bank.address, active=False):
        client.suspend(bank.address)


def test_reinstate_reverts_status_unchanged_when_active(client, make_bank, reverts):
    bank = make_bank()
    with reverts("ParticipantStatusUnchanged", participant=bank.address, active=True):
        client.reinstate(bank.address)


# ----------------------------------------------------------------------- views
def test_views_return_zero_values_for_unknown_participant(client, contracts):
    unknown = Account.create().address
    assert client.participant_of("NONEDEFFXXX") is None
    assert client.bic_of(unknown) == b"\0" * 11
    assert client.is_active(unknown) is False
    assert client.roles_of(unknown) == 0
    assert _registry_view(contracts, "countryOf", unknown) == b"\0\0"


def test_are_active_needs_both_participants_active(client, make_bank, contracts):
    a, b = make_bank(), make_bank()
    unknown = Account.create().address
    assert _registry_view(contracts, "areActive", a.address, b.address) is True
    assert _registry_view(contracts, "areActive", a.address, unknown) is False
    client.suspend(b.address)
    assert _registry_view(contracts, "areActive", a.address, b.address) is False
    assert _registry_view(contracts, "areActive", b.address, a.address) is False


def test_participant_at_reverts_out_of_range(client, reverts):
    data = encode_call("participantAt(uint256)", ["uint256"], [client.participant_count()])
    with reverts("Panic", code=0x32):  # array index out of bounds
        client.operator.call(client.registry, data)
