"""Bank keys the gateway holds for banks that let it sign: encrypted eth-account keystore
files (one per address) under the data folder, decrypted once per process and kept in
memory. The passphrase comes from settings and is never logged or returned.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from chain_gateway.errors import ConfigurationError, NotFound

# scrypt work factor: full strength (2^18, eth-account's default) in production; lighter
# where keys are throwaway (tests, local demo) so start-up stays fast.
SCRYPT_N_PRODUCTION = 2**18
SCRYPT_N_DEVELOPMENT = 2**12


class KeyStore:
    """Encrypted keys by address; `account(address)` is the only way a key leaves it."""

    def __init__(self, directory: Path, passphrase: str, *, production: bool = False) -> None:
        self._dir = directory
        self._passphrase = passphrase
        self._n = SCRYPT_N_PRODUCTION if production else SCRYPT_N_DEVELOPMENT
        self._cache: dict[str, LocalAccount] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the passphrase
        return f"KeyStore({self._dir})"

    def _path(self, address: str) -> Path:
        return self._dir / f"{to_checksum_address(address)}.json"

    def create(self) -> LocalAccount:
        """A fresh random key, stored encrypted before it is returned."""
        account: LocalAccount = Account.create()
        self.add(account)
        return account

    def add(self, account: LocalAccount) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        encrypted = Account.encrypt(account.key, self._passphrase, kdf="scrypt", iterations=self._n)
        path = self._path(account.address)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(encrypted, fh)
        tmp.replace(path)
        with self._lock:
            self._cache[to_checksum_address(account.address)] = account

    def has(self, address: str) -> bool:
        return to_checksum_address(address) in self._cache or self._path(address).is_file()

    def account(self, address: str) -> LocalAccount:
        key = to_checksum_address(address)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"the gateway holds no key for {key}")
        try:
            raw = Account.decrypt(json.loads(path.read_text()), self._passphrase)
        except ValueError as exc:
            raise ConfigurationError(f"cannot decrypt the keystore for {key}: wrong passphrase?") from exc
        account: LocalAccount = Account.from_key(raw)
        with self._lock:
            self._cache[key] = account
        return account
