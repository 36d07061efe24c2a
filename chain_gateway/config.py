"""One settings object for the whole gateway; no other module reads the environment.

Values come from environment variables prefixed ``SETTLEMENT_`` (or a ``.env`` file).
Defaults run the embedded local set-up: a managed anvil and SQLite under ``var/``.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chain_gateway.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_KEYSTORE_PASSPHRASE = "development-only-passphrase"


class Settings(BaseSettings):
    """Everything the gateway can be told, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="SETTLEMENT_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    project_root: Path = PROJECT_ROOT
    data_dir: Path = PROJECT_ROOT / "var"

    # --- chain ---------------------------------------------------------------------
    chain: Literal["anvil", "eth-tester", "rpc"] = "anvil"
    rpc_url: str | None = Field(default=None, description="JSON-RPC URL when chain == 'rpc'")
    anvil_port: int | None = Field(default=None, description="fixed port for the managed anvil; free port if unset")
    anvil_state_interval: int = 1
    deployment_name: str = "run"  # make run's own chain; scripts/deploy defaults to "local"
    deployments_dir: Path = PROJECT_ROOT / "deployments"
    deployer_private_key: SecretStr | None = None
    relayer_private_key: SecretStr | None = None
    gas_price_wei: int | None = Field(default=None, description="fixed legacy gas price; 0 for free-gas networks")
    confirmation_depth: int = 0
    receipt_timeout_seconds: float = 30.0
    rpc_timeout_seconds: float = 10.0

    # --- mirror --------------------------------------------------------------------
    database_url: str | None = None

    # --- keys ----------------------------------------------------------------------
    keystore_passphrase: SecretStr = SecretStr(DEV_KEYSTORE_PASSPHRASE)

    # --- API -----------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 5 * 1024 * 1024
    rate_limit_per_second: float = 1000.0
    rate_limit_burst: int = 2000
    order_ttl_seconds: int = 300
    enabled_currencies: list[str] = Field(
        default_factory=lambda: ["USD", "EUR", "GBP", "JPY", "CHF", "SGD", "HKD", "AUD", "CAD", "CNY", "BHD", "KWD", "INR"]
    )

    # --- queue and gridlock ----------------------------------------------------------
    gridlock_time_limit_seconds: float = 10.0
    gridlock_stuck_seconds: float | None = Field(default=60.0, description="auto-resolve a stuck queue; None: off")

    # --- risk (docs/risk.md) ------------------------------------------------------
    watchlist_path: Path | None = Field(default=None, description="watch-list file (CSV or JSON Lines)")
    watchlist_check_interval_ms: int = 1000
    risk_rules: dict[str, Any] = Field(default_factory=dict, description="JSON: velocity, duplicate, outlier")

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.environment == "production":
            if self.keystore_passphrase.get_secret_value() == DEV_KEYSTORE_PASSPHRASE:
                raise ConfigurationError("SETTLEMENT_KEYSTORE_PASSPHRASE must be set outside development")
            if self.chain != "rpc":
                raise ConfigurationError("production runs against an RPC node: set SETTLEMENT_CHAIN=rpc")
        if self.chain == "rpc" and not self.rpc_url:
            raise ConfigurationError("SETTLEMENT_RPC_URL is required when SETTLEMENT_CHAIN=rpc")
        return self

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mirror.sqlite3'}"

    @property
    def build_dir(self) -> Path:
        return self.project_root / "build"

    @property
    def contracts_dir(self) -> Path:
        return self.project_root / "contracts"

    @property
    def deployment_file(self) -> Path:
        return self.deployments_dir / f"{self.deployment_name}.json"

    @property
    def keystore_dir(self) -> Path:
        return self.data_dir / "keystore"


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests, CLI flags) on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
