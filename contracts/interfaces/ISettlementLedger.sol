// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Settlement ledger
/// @notice Holds each participant's settlement balance per currency and moves money only
/// against the debtor's EIP-712 signature over a {PaymentOrder}.
/// @dev Units: `currency` is the ISO 4217 code in ASCII (`"USD"` = 0x555344); amounts are
/// integers in the currency's minor units; `uetr` is the 16 bytes of the UUID.
///
/// Invariants (each has a named test in tests/contracts):
///  - conservation: for each currency, the sum of all balances == totalSupply(currency)
///    == funded - defunded;
///  - authorisation: no call debits a participant without that participant's signature,
///    except {defund} by the operator;
///  - single use: a UETR moves money at most once, whatever its outcome;
///  - pause: while paused nothing moves; views still answer.
interface ISettlementLedger {
    /// @notice A payment order as the debtor signs it (EIP-712 type `PaymentOrder`).
    /// @param uetr The payment's unique end-to-end transaction reference.
    /// @param debtor The participant whose balance is debited; must be the signer.
    /// @param creditor The participant credited.
    /// @param currency ISO 4217 code.
    /// @param amount Minor units, at most `type(uint96).max`.
    /// @param flags Bit 0: queue if liquidity is short. Bit 1: urgent priority.
    /// @param deadline Unix seconds after which the order is refused.
    /// @param instructionHash keccak-256 of the RFC 8785 canonical JSON of the instruction.
    struct PaymentOrder {
        bytes16 uetr;
        address debtor;
        address creditor;
        bytes3 currency;
        uint256 amount;
        uint8 flags;
        uint64 deadline;
        bytes32 instructionHash;
    }

    /// @notice Operator limits of one participant in one currency (0 means no limit).
    struct Limits {
        uint128 maxPerPayment;
        uint128 maxDailyOutflow;
    }

    // ----------------------------------------------------------------- events
    /// @notice Emitted when the operator credits reserves to a participant.
    event Funded(address indexed participant, bytes3 indexed currency, uint256 amount, bytes32 ref);

    /// @notice Emitted when the operator withdraws reserves from a participant.
    event Defunded(address indexed participant, bytes3 indexed currency, uint256 amount, bytes32 ref);

    /// @notice Emitted when a payment settles (directly, from the queue, or in a gridlock batch).
    event PaymentSettled(
        bytes16 indexed uetr,
        address indexed debtor,
        address indexed creditor,
        bytes3 currency,
        uint256 amount,
        bytes32 instructionHash
    );

    /// @notice Emitted when a signed order lacks liquidity and asked to wait in the queue.
    event PaymentQueued(
        bytes16 indexed uetr, address indexed debtor, address indexed creditor, bytes3 currency, uint256 amount, uint8 flags
    );

    /// @notice Emitted when a queued payment is cancelled by its debtor.
    event PaymentCancelled(bytes16 indexed uetr);

    /// @notice Emitted when an order cannot settle; `reason` is the selector of the custom error.
    event PaymentRejected(bytes16 indexed uetr, bytes4 reason);

    /// @notice Emitted when a queued payment is put on hold (`held`) or released from hold.
    event PaymentHoldChanged(bytes16 indexed uetr, bool held);

    /// @notice Emitted when a queued payment's priority flags change.
    event PaymentPriorityChanged(bytes16 indexed uetr, uint8 flags);

    /// @notice Emitted after a batch of queued payments settled together.
    /// @param count Payments settled. @param gridlock True for a simultaneous (net) settlement.
    event QueueBatchSettled(uint256 count, bool gridlock);

    /// @notice Emitted when the operator changes a participant's limits in a currency.
    event LimitsChanged(address indexed participant, bytes3 indexed currency, uint128 maxPerPayment, uint128 maxDailyOutflow);

    /// @notice Emitted when the operator changes a bilateral daily cap (0 removes it).
    event BilateralLimitChanged(address indexed debtor, address indexed creditor, bytes3 indexed currency, uint256 maxDaily);

    /// @notice Emitted when a participant's own limits in a currency change (set by the participant
    /// itself or by a relayer on its behalf); 0 means no own limit, so the operator cap alone applies.
    /// @param participant The participant whose limits changed.
    /// @param currency ISO 4217 code.
    /// @param maxPerPayment The participant's own maximum per payment (minor units, 0 = none).
    /// @param maxDailyOutflow The participant's own maximum outflow per UTC day (minor units, 0 = none).
    event OwnLimitsChanged(address indexed participant, bytes3 indexed currency, uint128 maxPerPayment, uint128 maxDailyOutflow);

    // ----------------------------------------------------------------- errors
    /// @notice Thrown when the debtor's balance does not cover the amount.
    error InsufficientBalance(address participant, bytes3 currency, uint256 balance, uint256 needed);

    /// @notice Thrown when a UETR was already used, whatever its outcome.
    error DuplicateUetr(bytes16 uetr);

    /// @notice Thrown when the signature does not recover to the order's debtor.
    error InvalidSignature();

    /// @notice Thrown when the debtor or creditor is not an active participant.
    error NotActive(address participant);

    /// @notice Thrown when an order is submitted after its deadline.
    error OrderExpired(uint64 deadline);

    /// @notice Thrown when an amount is zero or above `type(uint96).max`, or debtor == creditor.
    error InvalidOrder(bytes16 uetr);

    /// @notice Thrown when a payment would exceed a limit. `kind`: 1 per payment, 2 daily, 3 bilateral.
    error LimitExceeded(address participant, bytes3 currency, uint8 kind, uint256 limit, uint256 wouldBe);

    /// @notice Thrown when a queue operation names a UETR that is not queued.
    error NotQueued(bytes16 uetr);

    /// @notice Thrown when someone other than the debtor or a relayer manages a queued payment.
    error NotDebtor(bytes16 uetr, address caller);

    /// @notice Thrown when a gridlock proposal would leave a participant below zero.
    error GridlockInfeasible(address participant, bytes3 currency, uint256 available, uint256 needed);

    /// @notice Thrown when a gridlock proposal names a held or non-queued payment.
    error GridlockItemInvalid(bytes16 uetr);

    /// @notice Thrown when an operator call gets a zero amount or an unregistered participant.
    error InvalidFunding(address participant, bytes3 currency, uint256 amount);

    /// @notice Thrown when batch arrays differ in length.
    error LengthMismatch(uint256 orders, uint256 signatures);

    /// @notice Thrown when a participant's own limit would be looser than the operator's non-zero cap.
    /// @param participant The participant whose own limits were being set.
    /// @param currency ISO 4217 code.
    /// @param kind 1 per payment, 2 daily outflow (as in {LimitExceeded}).
    /// @param cap The operator's cap for that kind.
    /// @param requested The own limit that was asked for.
    error LimitAboveCap(address participant, bytes3 currency, uint8 kind, uint256 cap, uint256 requested);

    // --------------------------------------------------------------- operator
    /// @notice Credits reserves to a registered participant.
    /// @dev Requirements: OPERATOR_ROLE, not paused, amount > 0. Emits {Funded}.
    function fund(address participant, bytes3 currency, uint256 amount, bytes32 ref) external;

    /// @notice Withdraws reserves from a participant's balance.
    /// @dev Requirements: OPERATOR_ROLE, not paused, 0 < amount <= balance. Emits {Defunded}.
    function defund(address participant, bytes3 currency, uint256 amount, bytes32 ref) external;

    /// @notice Sets the operator limits of a participant in a currency (0 = unlimited).
    /// @dev Requirements: OPERATOR_ROLE. Emits {LimitsChanged}.
    function setLimits(address participant, bytes3 currency, uint128 maxPerPayment, uint128 maxDailyOutflow) external;

    /// @notice Sets a daily cap on what `debtor` may pay `creditor` in `currency` (0 removes it).
    /// @dev The day's counter starts when a cap exists; payments made earlier that day while
    /// no cap was set are not counted. Requirements: OPERATOR_ROLE. Emits {BilateralLimitChanged}.
    function setBilateralLimit(address debtor, address creditor, bytes3 currency, uint256 maxDaily) external;

    /// @notice Stops every movement of money. Requirements: OPERATOR_ROLE. Emits {Paused}.
    function pause() external;

    // ------------------------------------------------------- participant limits
    /// @notice Sets the caller's own limits in `currency`: a participant may tighten, never
    /// loosen, what the operator allows. 0 means no own limit (the operator cap alone applies).
    /// @dev The limit enforced on payments is the stricter non-zero of the operator cap and the
    /// own limit ({effectiveLimits}), so an operator who later lowers a cap below an own limit
    /// still binds. Works while paused (it moves no money).
    /// Requirements: the caller is a registered participant (else {NotActive}); each non-zero
    /// operator cap is >= the requested own limit (else {LimitAboveCap}). Emits {OwnLimitsChanged}.
    /// @param currency ISO 4217 code.
    /// @param maxPerPayment Own maximum per payment, minor units (0 = none).
    /// @param maxDailyOutflow Own maximum outflow per UTC day, minor units (0 = none).
    function setOwnLimits(bytes3 currency, uint128 maxPerPayment, uint128 maxDailyOutflow) external;

    /// @notice Sets `participant`'s own limits on its behalf: the gateway relays a change the
    /// bank asked for over its authenticated API. Same rules as {setOwnLimits}.
    /// @dev Requirements: RELAYER_ROLE, `participant` registered (else {NotActive}), within the
    /// operator caps (else {LimitAboveCap}). Emits {OwnLimitsChanged}.
    /// @param participant The participant whose own limits are set.
    /// @param currency ISO 4217 code.
    /// @param maxPerPayment Own maximum per payment, minor units (0 = none).
    /// @param maxDailyOutflow Own maximum outflow per UTC day, minor units (0 = none).
    function setOwnLimitsFor(address participant, bytes3 currency, uint128 maxPerPayment, uint128 maxDailyOutflow)
        external;

    /// @notice Lifts a pause. Requirements: OPERATOR_ROLE. Emits {Unpaused}.
    function unpause() external;

    // ---------------------------------------------------------------- payments
    /// @notice Settles (or queues) one signed order; reverts with the custom error on failure.
    /// @dev Requirements: RELAYER_ROLE, not paused, valid signature by `order.debtor`, unused UETR,
    /// deadline not passed, both parties active, within limits, and either enough balance or the
    /// queue flag. Emits {PaymentSettled} or {PaymentQueued}.
    function submitPayment(PaymentOrder calldata order, bytes calldata signature) external;

    /// @notice Settles many signed orders item by item: each settles, queues (if flagged) or is
    /// rejected with {PaymentRejected}; one bad item never reverts the others.
    /// @dev A rejected item with a valid signature consumes its UETR (status 4); an item whose
    /// signature does not verify, or whose UETR is already used, changes no state, so nobody
    /// can burn a bank's UETR without its key. Requirements: RELAYER_ROLE, not paused.
    function settleBatch(PaymentOrder[] calldata orders, bytes[] calldata signatures) external;

    // ------------------------------------------------------------------ queue
    /// @notice Settles, in the given order, each queued payment whose debtor now has the
    /// balance; those that still do not fit are skipped (FIFO bypass) and stay queued.
    /// @dev Requirements: RELAYER_ROLE or OPERATOR_ROLE, not paused. Emits {PaymentSettled} per
    /// payment and one {QueueBatchSettled}.
    function settleQueued(bytes16[] calldata uetrs) external;

    /// @notice Settles a set of queued payments simultaneously, on net positions: every
    /// participant's balance plus incoming minus outgoing within the set must stay >= 0, or
    /// nothing moves. The solver proposes; this function is the authority.
    /// @dev Requirements: OPERATOR_ROLE, not paused, each item queued and not held.
    /// Emits {PaymentSettled} per payment and one {QueueBatchSettled}.
    function settleGridlock(bytes16[] calldata uetrs) external;

    /// @notice Cancels a queued payment. Requirements: the debtor or RELAYER_ROLE. Emits {PaymentCancelled}.
    function cancelQueued(bytes16 uetr) external;

    /// @notice Holds (`true`) or releases a queued payment; a held payment is never settled.
    /// @dev Requirements: the debtor or RELAYER_ROLE. Emits {PaymentHoldChanged}.
    function setHold(bytes16 uetr, bool held) external;

    /// @notice Changes a queued payment's urgency (bit 1 of its flags).
    /// @dev Requirements: the debtor or RELAYER_ROLE. Emits {PaymentPriorityChanged}.
    function setPriority(bytes16 uetr, bool urgent) external;

    // ------------------------------------------------------------------- views
    /// @notice The balance of `participant` in `currency`, in minor units.
    function balanceOf(address participant, bytes3 currency) external view returns (uint256);

    /// @notice Funded minus defunded in `currency`; equals the sum of all balances.
    function totalSupply(bytes3 currency) external view returns (uint256);

    /// @notice 0 unknown, 1 queued, 2 settled, 3 cancelled, 4 rejected, 5 reserved in the open gridlock batch.
    function paymentStatus(bytes16 uetr) external view returns (uint8);

    /// @notice The queued payment stored for `uetr` (zero values when never queued).
    function queuedPayment(bytes16 uetr)
        external
        view
        returns (address debtor, address creditor, bytes3 currency, uint256 amount, uint8 flags, bool held, uint64 seq);

    /// @notice The operator limits of `participant` in `currency`.
    function limitsOf(address participant, bytes3 currency) external view returns (Limits memory);

    /// @notice The limits `participant` set for itself in `currency` (0 = none).
    function ownLimitsOf(address participant, bytes3 currency) external view returns (Limits memory);

    /// @notice The limits enforced on `participant`'s payments in `currency`: for each kind, the
    /// stricter non-zero of the operator cap and the participant's own limit (0 = unlimited).
    function effectiveLimits(address participant, bytes3 currency) external view returns (Limits memory);

    /// @notice What `participant` has paid out in `currency` on UTC day `day` (unix seconds / 86400).
    function outflowOn(address participant, bytes3 currency, uint64 day) external view returns (uint256);

    /// @notice The EIP-712 digest the debtor signs for `order`.
    function hashPaymentOrder(PaymentOrder calldata order) external view returns (bytes32);

    /// @notice The participant registry this ledger consults.
    function registry() external view returns (address);

    // ========================================== FX payment-versus-payment, gridlock batches (issue 5)
    /// @notice The two legs of one cross-currency payment, as the FxSettlement contract hands them
    /// over after verifying the debtor's {IFxSettlement-FxOrder} and the provider's quote.
    /// @param debitCurrency X, paid by the debtor to the provider. @param debitAmount X minor units.
    /// @param creditCurrency Y, paid by the provider to the creditor. @param creditAmount Y minor units.
    struct FxLegs {
        bytes16 uetr;
        address debtor;
        address creditor;
        address provider;
        bytes3 debitCurrency;
        uint256 debitAmount;
        bytes3 creditCurrency;
        uint256 creditAmount;
        bytes32 quoteId;
        bytes32 instructionHash;
    }

    /// @notice Emitted when a cross-currency payment settled payment-versus-payment: the debtor paid
    /// `debitAmount` of `debitCurrency` to `provider`, which paid `creditAmount` of `creditCurrency` to
    /// the creditor, in the same transaction. Always directly followed by {PaymentSettled} for the
    /// creditor leg (debtor, creditor, creditCurrency, creditAmount), so an indexer that reads this
    /// event first books the four movements instead of the plain payment's two.
    event FxSettled(
        bytes16 indexed uetr,
        bytes32 indexed quoteId,
        address indexed provider,
        bytes3 debitCurrency,
        uint256 debitAmount,
        bytes3 creditCurrency,
        uint256 creditAmount
    );

    /// @notice Emitted when queued payments were reserved for the open gridlock batch.
    /// @param count Payments reserved by this call. @param reserved Payments reserved in the batch so far.
    event GridlockReserved(bytes32 indexed batchId, uint256 count, uint256 reserved);

    /// @notice Emitted when a gridlock batch's net positions were applied: all its money moved here.
    /// @param payments Payments in the batch. @param accounts (participant, currency) positions applied.
    event GridlockCommitted(bytes32 indexed batchId, uint256 payments, uint256 accounts);

    /// @notice Emitted when a gridlock batch is released instead of committed: nothing moved.
    /// @param reason 0 when the operator released it, else the selector of the failed check
    /// ({NotActive}, {GridlockInfeasible}, {LimitExceeded}) and the account it failed on.
    event GridlockReleased(bytes32 indexed batchId, bytes4 reason, address participant, bytes3 currency);

    /// @notice Emitted when every payment of a batch left the reserved state (settled, or queued again).
    event GridlockClosed(bytes32 indexed batchId, bool committed, uint256 payments);

    /// @notice Thrown (as a rejection reason) when a quote is used after its expiry.
    error FxQuoteExpired(bytes32 quoteId, uint64 expiry);

    /// @notice Thrown (as a rejection reason) when a payment would take a quote past its capacity.
    error FxCapacityExceeded(bytes32 quoteId, uint256 capacity, uint256 wouldBe);

    /// @notice Thrown (as a rejection reason) when the quote's debit is more than the debtor signed for.
    error FxDebitAboveMax(bytes16 uetr, uint256 maxDebit, uint256 debit);

    /// @notice Thrown when a gridlock batch call does not fit the open batch: another batch is open, or
    /// the batch is not in the state the call needs (1 reserving, 2 committed, 3 released).
    error GridlockBatchState(bytes32 batchId, bytes32 openBatchId, uint8 state);

    /// @notice Settles one cross-currency payment payment-versus-payment for the FxSettlement
    /// contract, or records its rejection: the debtor pays `debitAmount` of X to the provider and the
    /// provider pays `creditAmount` of Y to the creditor, both or neither.
    /// @dev The caller has verified the debtor's signature over the order (which names the quote), the
    /// provider's signature over the quote, its expiry and capacity, and computed the debit; a non-zero
    /// `rejection` is what it found wrong. Here: the UETR unused, amounts in (0, 2^96), debtor !=
    /// creditor, X != Y, debtor, creditor and provider active, the debtor's limits in X (provider as
    /// counterparty), the debtor's balance in X and the provider's in Y. A used UETR, {OrderExpired} and
    /// {InvalidSignature} change nothing; any other rejection consumes the UETR (status 4).
    /// Requirements: FX_SETTLER_ROLE, not paused. Emits {FxSettled} then {PaymentSettled}, or
    /// {PaymentRejected}.
    /// @return reason 0 when settled, else the selector of the rejection's custom error.
    function settleFxLegs(FxLegs calldata legs, bytes4 rejection) external returns (bytes4 reason);

    /// @notice Reserves queued payments for gridlock batch `batchId` (opening it if no batch is open):
    /// each leaves the queue (status 5, reserved), so it can be neither cancelled, held, nor settled
    /// elsewhere, and its amount is added to the batch's net positions.
    /// @dev Call as often as needed (chunks), then {commitGridlock} or {releaseGridlock}. One batch is
    /// open at a time. Bilateral caps are checked and counted per payment here (as a settlement does).
    /// Requirements: OPERATOR_ROLE, not paused, each item queued and not held (else
    /// {GridlockItemInvalid}). Emits {GridlockReserved}.
    function reserveGridlock(bytes32 batchId, bytes16[] calldata uetrs) external;

    /// @notice Re-checks every net position of the batch against current balances (balance + in - out
    /// >= 0), every party active and the debtors' limits, then applies them: all of the batch's money
    /// moves here, at once. When a check fails nothing moves and the batch is released instead.
    /// @dev Then {closeGridlock} marks the payments settled (or queued again). Requirements:
    /// OPERATOR_ROLE, not paused, `batchId` open and reserving. Emits {GridlockCommitted} or {GridlockReleased}.
    function commitGridlock(bytes32 batchId) external;

    /// @notice Abandons a reserving batch: nothing moves; {closeGridlock} returns its payments to the queue.
    /// @dev Works while paused. Requirements: OPERATOR_ROLE, `batchId` open and reserving. Emits {GridlockReleased}.
    function releaseGridlock(bytes32 batchId) external;

    /// @notice Takes reserved payments of a committed batch to settled (one {PaymentSettled} each), or of
    /// a released batch back to the queue (seq, flags and hold unchanged). UETRs not reserved are skipped,
    /// so a chunk may be sent again. When the last one is closed the batch closes ({GridlockClosed}).
    /// @dev Moves no money (a commit did), so it works while paused. Requirements: OPERATOR_ROLE,
    /// `batchId` open and committed or released. Emits {QueueBatchSettled} for a committed batch.
    function closeGridlock(bytes32 batchId, bytes16[] calldata uetrs) external;

    /// @notice The open gridlock batch: id, state (0 none, 1 reserving, 2 committed, 3 released),
    /// payments reserved and payments closed so far.
    function gridlockBatch() external view returns (bytes32 batchId, uint8 state, uint256 reserved, uint256 closed);
}
