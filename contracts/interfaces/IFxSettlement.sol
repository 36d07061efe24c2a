// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title FX payment-versus-payment
/// @notice Verifies cross-currency payment orders against FX providers' signed quotes and has the
/// ledger settle both legs in one transaction ({ISettlementLedger-settleFxLegs}), or neither.
/// @dev A separate contract so the ledger stays under the EIP-170 code size limit; it holds
/// FX_SETTLER_ROLE on the ledger and nothing else. Relayers are the ledger's RELAYER_ROLE holders.
/// EIP-712 domain: name "SettlementLedger FX", version "1", this contract's address.
///
/// Rate semantics: `rate` is creditor-currency (Y) minor units per debit-currency (X) minor unit,
/// scaled by 1e18; the creditor receives exactly `amount` of Y and the debtor pays
/// ceil(amount * 1e18 / rate) of X: rounded up, so no money is created and the provider gains at
/// most one X minor unit. Capacity is counted in Y, cumulatively per (provider, quoteId).
interface IFxSettlement {
    /// @notice An FX provider's quote as it signs it (EIP-712 type `FxQuote`).
    /// @param quoteId The provider's id of the quote; capacity is counted per (provider, quoteId).
    /// @param provider The FX provider and signer; it receives X from the debtor and pays Y.
    /// @param debitCurrency X, the currency the debtor pays in.
    /// @param creditCurrency Y, the currency the creditor receives.
    /// @param rate Y minor units per X minor unit, scaled by 1e18.
    /// @param capacity The most the quote pays out in total, Y minor units.
    /// @param expiry Unix seconds after which the quote is refused.
    struct FxQuote {
        bytes32 quoteId;
        address provider;
        bytes3 debitCurrency;
        bytes3 creditCurrency;
        uint256 rate;
        uint256 capacity;
        uint64 expiry;
    }

    /// @notice A cross-currency payment order as the debtor signs it (EIP-712 type `FxOrder`). It names
    /// the quote (id and provider), the debit currency and the most the debtor pays, so a relayer can
    /// neither swap the quote nor make the debtor pay more.
    /// @param currency Y, the creditor's currency. @param amount What the creditor receives, Y minor units.
    /// @param maxDebit The most the debtor pays, X minor units.
    /// @param instructionHash As in {ISettlementLedger-PaymentOrder}.
    struct FxOrder {
        bytes16 uetr;
        address debtor;
        address creditor;
        bytes3 currency;
        uint256 amount;
        bytes32 quoteId;
        address provider;
        bytes3 debitCurrency;
        uint256 maxDebit;
        uint64 deadline;
        bytes32 instructionHash;
    }

    /// @notice Thrown when the caller is not a relayer of the ledger.
    error FxUnauthorized(address caller);

    /// @notice Thrown when the batch arrays differ in length.
    error FxLengthMismatch(uint256 orders, uint256 signatures, uint256 quotes, uint256 quoteSignatures);

    /// @notice Settles cross-currency orders item by item, each payment-versus-payment, never queued.
    /// @dev Per item (the ledger emits the outcome: {ISettlementLedger-FxSettled} and PaymentSettled, or
    /// PaymentRejected with the selector): a passed deadline ({ISettlementLedger-OrderExpired}), a debtor
    /// signature that does not verify, a quote other than the one the order names, or a quote not
    /// signed by a registered FX provider ({ISettlementLedger-InvalidSignature}) change nothing; an
    /// expired quote ({ISettlementLedger-FxQuoteExpired}), a zero rate or X == Y (InvalidOrder), a debit
    /// above `maxDebit` ({ISettlementLedger-FxDebitAboveMax}), a payment past the quote's capacity
    /// ({ISettlementLedger-FxCapacityExceeded}), and the ledger's own checks (see
    /// {ISettlementLedger-settleFxLegs}) consume the UETR. One bad item never reverts the others.
    /// Requirements: the caller holds the ledger's RELAYER_ROLE; the ledger is not paused.
    function settleFxBatch(
        FxOrder[] calldata orders,
        bytes[] calldata signatures,
        FxQuote[] calldata quotes,
        bytes[] calldata quoteSignatures
    ) external;

    /// @notice How much of quote `quoteId` of `provider` has been paid out (Y minor units).
    function quoteUsed(address provider, bytes32 quoteId) external view returns (uint256);

    /// @notice The EIP-712 digest the debtor signs for `order`.
    function hashFxOrder(FxOrder calldata order) external view returns (bytes32);

    /// @notice The EIP-712 digest the provider signs for `quote`.
    function hashFxQuote(FxQuote calldata quote) external view returns (bytes32);

    /// @notice The ledger this contract settles on.
    function ledger() external view returns (address);
}
