// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {IFxSettlement} from "./interfaces/IFxSettlement.sol";
import {ISettlementLedger} from "./interfaces/ISettlementLedger.sol";

/// @title FxSettlement
/// @notice Payment-versus-payment for cross-currency payments: checks the debtor's signed order and
/// the FX provider's signed quote, then has the ledger move both legs at once.
/// @dev Holds no money and moves none itself: the ledger's {ISettlementLedger-settleFxLegs} does,
/// in the same call, re-checking balances, limits and participants. What this contract adds is
/// the FX trust: without the debtor's signature over an order naming this quote, and the
/// provider's over the quote, nothing reaches the ledger. Capacity is the only state.
contract FxSettlement is EIP712, IFxSettlement {
    /// @notice EIP-712 type hash of {FxQuote}.
    bytes32 public constant FX_QUOTE_TYPEHASH = keccak256(
        "FxQuote(bytes32 quoteId,address provider,bytes3 debitCurrency,bytes3 creditCurrency,uint256 rate,uint256 capacity,uint64 expiry)"
    );
    /// @notice EIP-712 type hash of {FxOrder}.
    bytes32 public constant FX_ORDER_TYPEHASH = keccak256(
        "FxOrder(bytes16 uetr,address debtor,address creditor,bytes3 currency,uint256 amount,bytes32 quoteId,address provider,bytes3 debitCurrency,uint256 maxDebit,uint64 deadline,bytes32 instructionHash)"
    );
    /// @notice The ledger's relayer role, which may submit FX batches here too.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    uint256 private constant _RATE_SCALE = 1e18;
    uint8 private constant _ROLE_FX_PROVIDER = 2; // ParticipantRegistry.ROLE_FX_PROVIDER

    ISettlementLedger private immutable _ledger;
    IParticipantRegistry private immutable _registry;
    mapping(address provider => mapping(bytes32 quoteId => uint256)) private _used;

    /// @param ledger_ The ledger; it must grant this contract FX_SETTLER_ROLE.
    constructor(ISettlementLedger ledger_) EIP712("SettlementLedger FX", "1") {
        _ledger = ledger_;
        _registry = IParticipantRegistry(ledger_.registry());
    }

    /// @inheritdoc IFxSettlement
    function settleFxBatch(
        FxOrder[] calldata orders,
        bytes[] calldata signatures,
        FxQuote[] calldata quotes,
        bytes[] calldata quoteSignatures
    ) external {
        if (!IAccessControl(address(_ledger)).hasRole(RELAYER_ROLE, msg.sender)) revert FxUnauthorized(msg.sender);
        uint256 n = orders.length;
        if (n != signatures.length || n != quotes.length || n != quoteSignatures.length) {
            revert FxLengthMismatch(n, signatures.length, quotes.length, quoteSignatures.length);
        }
        for (uint256 i; i < n; ++i) {
            FxOrder calldata o = orders[i];
            FxQuote calldata q = quotes[i];
            (bytes4 rejection, uint256 debit) = _check(o, signatures[i], q, quoteSignatures[i]);
            ISettlementLedger.FxLegs memory legs = ISettlementLedger.FxLegs({
                uetr: o.uetr,
                debtor: o.debtor,
                creditor: o.creditor,
                provider: q.provider,
                debitCurrency: q.debitCurrency,
                debitAmount: debit,
                creditCurrency: q.creditCurrency,
                creditAmount: o.amount,
                quoteId: q.quoteId,
                instructionHash: o.instructionHash
            });
            // Effects after the call: the ledger is trusted and calls nothing back; capacity is
            // counted only for a payment that settled.
            if (_ledger.settleFxLegs(legs, rejection) == bytes4(0)) _used[q.provider][q.quoteId] += o.amount;
        }
    }

    /// @inheritdoc IFxSettlement
    function quoteUsed(address provider, bytes32 quoteId) external view returns (uint256) {
        return _used[provider][quoteId];
    }

    /// @inheritdoc IFxSettlement
    function hashFxOrder(FxOrder calldata order) external view returns (bytes32) {
        return _orderDigest(order);
    }

    /// @inheritdoc IFxSettlement
    function hashFxQuote(FxQuote calldata quote) external view returns (bytes32) {
        return _quoteDigest(quote);
    }

    /// @inheritdoc IFxSettlement
    function ledger() external view returns (address) {
        return address(_ledger);
    }

    /// @dev The FX checks of one item: 0 and the debit, or the rejection's selector. The ledger
    /// checks the UETR, the parties, limits and balances.
    function _check(FxOrder calldata o, bytes calldata signature, FxQuote calldata q, bytes calldata quoteSignature)
        private
        view
        returns (bytes4, uint256)
    {
        if (o.deadline < block.timestamp) return (ISettlementLedger.OrderExpired.selector, 0);
        if (
            !_signedBy(_orderDigest(o), signature, o.debtor) || o.quoteId != q.quoteId || o.provider != q.provider
                || o.debitCurrency != q.debitCurrency || o.currency != q.creditCurrency
                || !_signedBy(_quoteDigest(q), quoteSignature, q.provider)
                || _registry.rolesOf(q.provider) & _ROLE_FX_PROVIDER == 0
        ) return (ISettlementLedger.InvalidSignature.selector, 0);
        if (q.expiry < block.timestamp) return (ISettlementLedger.FxQuoteExpired.selector, 0);
        uint256 amount = o.amount;
        if (q.rate == 0 || amount == 0 || amount > type(uint96).max) return (ISettlementLedger.InvalidOrder.selector, 0);
        // debit = ceil(amount * 1e18 / rate). Cannot overflow: amount < 2^96, so scaled < 2^156 and
        // debit * rate <= scaled.
        uint256 scaled = amount * _RATE_SCALE;
        uint256 debit = scaled / q.rate;
        if (debit * q.rate != scaled) ++debit;
        if (debit > o.maxDebit) return (ISettlementLedger.FxDebitAboveMax.selector, debit);
        uint256 used = _used[q.provider][q.quoteId];
        // A quote is never paid out past its capacity, however often it is replayed.
        if (used > q.capacity || amount > q.capacity - used) return (ISettlementLedger.FxCapacityExceeded.selector, debit);
        return (bytes4(0), debit);
    }

    /// @dev `signature` is `signer`'s over `digest`.
    function _signedBy(bytes32 digest, bytes calldata signature, address signer) private pure returns (bool) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        return err == ECDSA.RecoverError.NoError && recovered == signer;
    }

    /// @dev Every member of FxOrder / FxQuote is a static one-word type, so `abi.encode(struct)` is
    /// exactly the EIP-712 encodeData of its members (tests compare with eth_account's encoder).
    function _orderDigest(FxOrder calldata o) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(bytes.concat(FX_ORDER_TYPEHASH, abi.encode(o))));
    }

    function _quoteDigest(FxQuote calldata q) private view returns (bytes32) {
        return _hashTypedDataV4(keccak256(bytes.concat(FX_QUOTE_TYPEHASH, abi.encode(q))));
    }
}
