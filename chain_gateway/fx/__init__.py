"""Cross-currency payments, payment-versus-payment: FX quotes, FX orders, the quote book, the
FX outbox and its submitter.

On-chain (contracts/FxSettlement.sol, EIP-712 domain "SettlementLedger FX" / "1" / its address):

* ``FxQuote(bytes32 quoteId,address provider,bytes3 debitCurrency,bytes3 creditCurrency,
  uint256 rate,uint256 capacity,uint64 expiry)`` is signed by the FX provider;
* ``FxOrder(bytes16 uetr,address debtor,address creditor,bytes3 currency,uint256 amount,
  bytes32 quoteId,address provider,bytes3 debitCurrency,uint256 maxDebit,uint64 deadline,
  bytes32 instructionHash)`` is signed by the debtor; it names the quote, so a relayer cannot
  swap quotes, and bounds what the debtor pays.

Units (API.md "Cross-currency"): ``rate`` is creditor-currency (Y) minor units per
debit-currency (X) minor unit, as an integer scaled by 10^18; the creditor receives exactly
``amount`` (Y minor units); the debtor pays ``debit_amount(amount, rate)`` = ceil(amount *
10^18 / rate) X minor units; capacity counts Y, cumulatively per (provider, quote id).

A quote id is 32 bytes; in JSON it is 64 lower-case hex characters without ``0x`` (it fits
the payment body's ``fx.quote_id``; ``0x``-prefixed ids are accepted where quotes are read).

Cross-currency payments never queue: they settle at once or are rejected (the quote expires).
They leave the gateway through their own small outbox (``fx_payments``) and submitter, which
sends ``FxSettlement.settleFxBatch``; the ledger emits their outcome like any payment's
(``FxSettled`` + ``PaymentSettled``, or ``PaymentRejected``).

Modules: ``orders`` (types, units, EIP-712, call data), ``contract`` (FxSettlement on chain),
``models`` (the quote book and FX outbox tables), ``service`` (quote book and intake),
``submitter`` (the FX outbox to the chain). Everything is importable from ``chain_gateway.fx``.
"""
from __future__ import annotations

from chain_gateway.errors import NotFound
from chain_gateway.fx.contract import (
    deploy_fx_settlement,
    ensure_fx_settlement,
    find_fx_settlement,
    fx_artifact,
    quote_used,
)
from chain_gateway.fx.models import (
    FX_DONE,
    FX_FAILED,
    FX_HELD,
    FX_PENDING,
    FX_SENT,
    FxPaymentEntry,
    FxQuoteRecord,
    enqueue_fx,
)
from chain_gateway.fx.orders import (
    FX_CONTRACT,
    FX_ORDER_TYPE,
    FX_QUOTE_TYPE,
    FX_SETTLER_ROLE,
    RATE_SCALE,
    FxOrder,
    FxQuote,
    QuoteCapacityExhausted,
    QuoteRejected,
    capacity_minor,
    debit_amount,
    encode_fx_batch,
    fx_batch_gas,
    fx_order_digest,
    fx_order_typed_data,
    new_quote_id,
    parse_quote_id,
    parse_rate,
    quote_digest,
    quote_typed_data,
    rate_major,
    sign_fx_order,
    sign_quote,
    verify_fx_order,
    verify_quote,
)
from chain_gateway.fx.service import FxService, QuoteView
from chain_gateway.fx.submitter import FxSubmitter

__all__ = [
    "FX_CONTRACT",
    "FX_DONE",
    "FX_FAILED",
    "FX_HELD",
    "FX_ORDER_TYPE",
    "FX_PENDING",
    "FX_QUOTE_TYPE",
    "FX_SENT",
    "FX_SETTLER_ROLE",
    "RATE_SCALE",
    "FxOrder",
    "FxPaymentEntry",
    "FxQuote",
    "FxQuoteRecord",
    "FxService",
    "FxSubmitter",
    "NotFound",
    "QuoteCapacityExhausted",
    "QuoteRejected",
    "QuoteView",
    "capacity_minor",
    "debit_amount",
    "deploy_fx_settlement",
    "encode_fx_batch",
    "enqueue_fx",
    "ensure_fx_settlement",
    "find_fx_settlement",
    "fx_artifact",
    "fx_batch_gas",
    "fx_order_digest",
    "fx_order_typed_data",
    "new_quote_id",
    "parse_quote_id",
    "parse_rate",
    "quote_digest",
    "quote_typed_data",
    "quote_used",
    "rate_major",
    "sign_fx_order",
    "sign_quote",
    "verify_fx_order",
    "verify_quote",
]

