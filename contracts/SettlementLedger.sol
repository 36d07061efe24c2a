// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {ISettlementLedger} from "./interfaces/ISettlementLedger.sol";

/// @title SettlementLedger
/// @notice Per-participant, per-currency settlement balances that move only against the
/// debtor's EIP-712 signature. A relayer (the gateway) submits signed orders; it cannot
/// forge, alter or replay them.
/// @dev The invariants are stated on {ISettlementLedger}. Money conservation holds because
/// every credit in this contract is paired, in the same call, with an equal debit
/// ({_settle}, {settleGridlock}), except {fund} and {defund}, which move `_supply` by the
/// same amount as the balance.
/// WARNING: DEFAULT_ADMIN_ROLE can grant OPERATOR_ROLE and RELAYER_ROLE; on a permissioned
/// network it should be held by the operator's multisig, not by a hot key.
contract SettlementLedger is AccessControl, EIP712, Pausable, ISettlementLedger {
    /// @notice Funds, defunds, sets limits, pauses and resolves gridlock.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    /// @notice Submits debtor-signed orders and manages the queue on debtors' behalf.
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");
    /// @notice EIP-712 type hash of {PaymentOrder}.
    bytes32 public constant PAYMENT_ORDER_TYPEHASH = keccak256(
        "PaymentOrder(bytes16 uetr,address debtor,address creditor,bytes3 currency,uint256 amount,uint8 flags,uint64 deadline,bytes32 instructionHash)"
    );

    uint8 public constant STATUS_UNKNOWN = 0;
    uint8 public constant STATUS_QUEUED = 1;
    uint8 public constant STATUS_SETTLED = 2;
    uint8 public constant STATUS_CANCELLED = 3;
    uint8 public constant STATUS_REJECTED = 4;

    uint8 public constant FLAG_QUEUE = 1;
    uint8 public constant FLAG_URGENT = 2;

    /// @dev Three slots: debtor|currency|flags|held|seq, creditor|amount, instructionHash.
    struct Queued {
        address debtor;
        bytes3 currency;
        uint8 flags;
        bool held;
        uint56 seq;
        address creditor;
        uint96 amount;
        bytes32 instructionHash;
    }

    struct DayCounter {
        uint64 day;
        uint192 amount;
    }

    struct BilateralCap {
        uint64 day;
        uint96 spent;
        uint96 maxDaily;
    }

    IParticipantRegistry private immutable _registry;

    mapping(address participant => mapping(bytes3 currency => uint256)) private _balances;
    mapping(bytes3 currency => uint256) private _supply;
    mapping(bytes16 uetr => uint8) private _status;
    mapping(bytes16 uetr => Queued) private _queue;
    uint56 private _queueSeq;
    mapping(address participant => mapping(bytes3 currency => Limits)) private _limits;
    mapping(address participant => mapping(bytes3 currency => DayCounter)) private _outflow;
    mapping(address debtor => mapping(address creditor => mapping(bytes3 currency => BilateralCap))) private _bilateral;
    /// @dev Limits a participant set for itself; enforced together with `_limits` ({_effectiveLimits}).
    mapping(address participant => mapping(bytes3 currency => Limits)) private _ownLimits;

    modifier onlyDebtorOrRelayer(bytes16 uetr) {
        if (_status[uetr] != STATUS_QUEUED) revert NotQueued(uetr);
        if (msg.sender != _queue[uetr].debtor && !hasRole(RELAYER_ROLE, msg.sender)) revert NotDebtor(uetr, msg.sender);
        _;
    }

    /// @param admin Receives DEFAULT_ADMIN_ROLE and OPERATOR_ROLE.
    /// @param registry_ The participant registry consulted for every payment.
    constructor(address admin, IParticipantRegistry registry_) EIP712("SettlementLedger", "1") {
        _registry = registry_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    // ================================================================ operator

    /// @inheritdoc ISettlementLedger
    function fund(address participant, bytes3 currency, uint256 amount, bytes32 ref)
        external
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
    {
        if (amount == 0 || _registry.bicOf(participant) == bytes11(0)) revert InvalidFunding(participant, currency, amount);
        _supply[currency] += amount;
        // Cannot overflow: a balance is at most the supply, which the line above bounds.
        unchecked {
            _balances[participant][currency] += amount;
        }
        emit Funded(participant, currency, amount, ref);
    }

    /// @inheritdoc ISettlementLedger
    function defund(address participant, bytes3 currency, uint256 amount, bytes32 ref)
        external
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
    {
        if (amount == 0) revert InvalidFunding(participant, currency, amount);
        uint256 balance = _balances[participant][currency];
        if (balance < amount) revert InsufficientBalance(participant, currency, balance, amount);
        // Cannot underflow: amount <= balance <= supply.
        unchecked {
            _balances[participant][currency] = balance - amount;
            _supply[currency] -= amount;
        }
        emit Defunded(participant, currency, amount, ref);
    }

    /// @inheritdoc ISettlementLedger
    function setLimits(address participant, bytes3 currency, uint128 maxPerPayment, uint128 maxDailyOutflow)
        external
        onlyRole(OPERATOR_ROLE)
    {
        _limits[participant][currency] = Limits(maxPerPayment, maxDailyOutflow);
        emit LimitsChanged(participant, currency, maxPerPayment, maxDailyOutflow);
    }

    /// @inheritdoc ISettlementLedger
    function setBilateralLimit(address debtor, address creditor, bytes3 currency, uint256 maxDaily)
        external
        onlyRole(OPERATOR_ROLE)
    {
        if (maxDaily > type(uint96).max) revert InvalidFunding(debtor, currency, maxDaily);
        BilateralCap storage cap = _bilateral[debtor][creditor][currency];
        cap.maxDaily = uint96(maxDaily);
        emit BilateralLimitChanged(debtor, creditor, currency, maxDaily);
    }

    /// @inheritdoc ISettlementLedger
    function pause() external onlyRole(OPERATOR_ROLE) {
        _pause();
    }

    /// @inheritdoc ISettlementLedger
    function unpause() external onlyRole(OPERATOR_ROLE) {
        _unpause();
    }

    // ====================================================== participant limits

    /// @inheritdoc ISettlementLedger
    function setOwnLimits(bytes3 currency, uint128 maxPerPayment, uint128 maxDailyOutflow) external {
        _setOwnLimits(msg.sender, currency, maxPerPayment, maxDailyOutflow);
    }

    /// @inheritdoc ISettlementLedger
    function setOwnLimitsFor(address participant, bytes3 currency, uint128 maxPerPayment, uint128 maxDailyOutflow)
        external
        onlyRole(RELAYER_ROLE)
    {
        _setOwnLimits(participant, currency, maxPerPayment, maxDailyOutflow);
    }

    // ================================================================ payments

    /// @inheritdoc ISettlementLedger
    function submitPayment(PaymentOrder calldata order, bytes calldata signature)
        external
        onlyRole(RELAYER_ROLE)
        whenNotPaused
    {
        bytes4 reason = _process(order, signature);
        // A direct submission is all or nothing: the revert also undoes the UETR's consumption.
        if (reason != bytes4(0)) _raise(order, reason);
    }

    /// @inheritdoc ISettlementLedger
    function settleBatch(PaymentOrder[] calldata orders, bytes[] calldata signatures)
        external
        onlyRole(RELAYER_ROLE)
        whenNotPaused
    {
        uint256 n = orders.length;
        if (n != signatures.length) revert LengthMismatch(n, signatures.length);
        for (uint256 i; i < n; ++i) {
            bytes4 reason = _process(orders[i], signatures[i]);
            if (reason != bytes4(0)) emit PaymentRejected(orders[i].uetr, reason);
        }
    }

    // =================================================================== queue

    /// @inheritdoc ISettlementLedger
    function settleQueued(bytes16[] calldata uetrs) external whenNotPaused {
        if (!hasRole(RELAYER_ROLE, msg.sender) && !hasRole(OPERATOR_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, RELAYER_ROLE);
        }
        uint256 settled;
        for (uint256 i; i < uetrs.length; ++i) {
            bytes16 uetr = uetrs[i];
            if (_status[uetr] != STATUS_QUEUED) continue;
            Queued storage q = _queue[uetr];
            if (q.held) continue;
            (address debtor, address creditor, bytes3 currency, uint256 amount) = (q.debtor, q.creditor, q.currency, q.amount);
            if (_balances[debtor][currency] < amount) continue; // FIFO bypass: a head that does not fit waits
            if (!_registry.areActive(debtor, creditor)) continue;
            (uint8 kind,,) = _limitCheck(debtor, creditor, currency, amount);
            if (kind != 0) continue;
            _settle(uetr, debtor, creditor, currency, amount, q.instructionHash);
            ++settled;
        }
        if (settled != 0) emit QueueBatchSettled(settled, false);
    }

    /// @inheritdoc ISettlementLedger
    function settleGridlock(bytes16[] calldata uetrs) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        uint256 n = uetrs.length;
        // Pass 1: credit every creditor first. Marking each item settled here also makes a UETR
        // listed twice fail the status check.
        for (uint256 i; i < n; ++i) {
            bytes16 uetr = uetrs[i];
            Queued storage q = _queue[uetr];
            if (_status[uetr] != STATUS_QUEUED || q.held) revert GridlockItemInvalid(uetr);
            if (!_registry.areActive(q.debtor, q.creditor)) {
                revert NotActive(_registry.isActive(q.debtor) ? q.creditor : q.debtor); // name the inactive party
            }
            _status[uetr] = STATUS_SETTLED;
            _balances[q.creditor][q.currency] += q.amount;
        }
        // Pass 2: debit every debtor. With all credits applied, each balance only falls from here
        // to its final value b + in - out, so a debit that does not fit proves a negative net
        // position; the revert then undoes the whole set.
        for (uint256 i; i < n; ++i) {
            bytes16 uetr = uetrs[i];
            Queued storage q = _queue[uetr];
            (address debtor, bytes3 currency, uint256 amount) = (q.debtor, q.currency, q.amount);
            uint256 balance = _balances[debtor][currency];
            if (balance < amount) revert GridlockInfeasible(debtor, currency, balance, amount);
            (uint8 kind, uint256 limit, uint256 wouldBe) = _limitCheck(debtor, q.creditor, currency, amount);
            if (kind != 0) revert LimitExceeded(debtor, currency, kind, limit, wouldBe);
            _recordOutflow(debtor, q.creditor, currency, amount);
            unchecked {
                _balances[debtor][currency] = balance - amount; // checked just above
            }
            emit PaymentSettled(uetr, debtor, q.creditor, currency, amount, q.instructionHash);
        }
        emit QueueBatchSettled(n, true);
    }

    /// @inheritdoc ISettlementLedger
    function cancelQueued(bytes16 uetr) external whenNotPaused onlyDebtorOrRelayer(uetr) {
        _status[uetr] = STATUS_CANCELLED;
        emit PaymentCancelled(uetr);
    }

    /// @inheritdoc ISettlementLedger
    function setHold(bytes16 uetr, bool held) external whenNotPaused onlyDebtorOrRelayer(uetr) {
        _queue[uetr].held = held;
        emit PaymentHoldChanged(uetr, held);
    }

    /// @inheritdoc ISettlementLedger
    function setPriority(bytes16 uetr, bool urgent) external whenNotPaused onlyDebtorOrRelayer(uetr) {
        Queued storage q = _queue[uetr];
        uint8 flags = urgent ? q.flags | FLAG_URGENT : q.flags & ~FLAG_URGENT;
        q.flags = flags;
        emit PaymentPriorityChanged(uetr, flags);
    }

    // =================================================================== views

    /// @inheritdoc ISettlementLedger
    function balanceOf(address participant, bytes3 currency) external view returns (uint256) {
        return _balances[participant][currency];
    }

    /// @inheritdoc ISettlementLedger
    function totalSupply(bytes3 currency) external view returns (uint256) {
        return _supply[currency];
    }

    /// @inheritdoc ISettlementLedger
    function paymentStatus(bytes16 uetr) external view returns (uint8) {
        return _status[uetr];
    }

    /// @inheritdoc ISettlementLedger
    function queuedPayment(bytes16 uetr)
        external
        view
        returns (address debtor, address creditor, bytes3 currency, uint256 amount, uint8 flags, bool held, uint64 seq)
    {
        Queued storage q = _queue[uetr];
        return (q.debtor, q.creditor, q.currency, q.amount, q.flags, q.held, q.seq);
    }

    /// @inheritdoc ISettlementLedger
    function limitsOf(address participant, bytes3 currency) external view returns (Limits memory) {
        return _limits[participant][currency];
    }

    /// @inheritdoc ISettlementLedger
    function ownLimitsOf(address participant, bytes3 currency) external view returns (Limits memory) {
        return _ownLimits[participant][currency];
    }

    /// @inheritdoc ISettlementLedger
    function effectiveLimits(address participant, bytes3 currency) external view returns (Limits memory) {
        return _effectiveLimits(participant, currency);
    }

    /// @inheritdoc ISettlementLedger
    function outflowOn(address participant, bytes3 currency, uint64 day) external view returns (uint256) {
        DayCounter storage c = _outflow[participant][currency];
        return c.day == day ? c.amount : 0;
    }

    /// @inheritdoc ISettlementLedger
    function hashPaymentOrder(PaymentOrder calldata order) external view returns (bytes32) {
        return _orderDigest(order);
    }

    /// @inheritdoc ISettlementLedger
    function registry() external view returns (address) {
        return address(_registry);
    }

    // ================================================================ internal

    /// @dev Settles, queues or rejects one order and returns 0 or the rejection's error selector.
    /// Orders whose UETR is used, whose deadline passed or whose signature fails change nothing;
    /// every later rejection consumes the UETR (status 4), since the debtor did sign it.
    function _process(PaymentOrder calldata o, bytes calldata signature) private returns (bytes4) {
        bytes16 uetr = o.uetr;
        if (_status[uetr] != STATUS_UNKNOWN) return DuplicateUetr.selector;
        if (o.deadline < block.timestamp) return OrderExpired.selector;
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(_orderDigest(o), signature);
        if (err != ECDSA.RecoverError.NoError || signer != o.debtor) return InvalidSignature.selector;

        bytes4 reason = _acceptOrReason(o);
        if (reason != bytes4(0)) _status[uetr] = STATUS_REJECTED;
        return reason;
    }

    function _acceptOrReason(PaymentOrder calldata o) private returns (bytes4) {
        (address debtor, address creditor, bytes3 currency, uint256 amount) = (o.debtor, o.creditor, o.currency, o.amount);
        if (amount == 0 || amount > type(uint96).max || debtor == creditor) return InvalidOrder.selector;
        if (!_registry.areActive(debtor, creditor)) return NotActive.selector;
        (uint8 kind,,) = _limitCheck(debtor, creditor, currency, amount);
        // A per-payment limit can never be met later; a daily one can, so a queued order waits.
        if (kind == 1) return LimitExceeded.selector;
        if (kind == 0 && _balances[debtor][currency] >= amount) {
            _settle(o.uetr, debtor, creditor, currency, amount, o.instructionHash);
            return bytes4(0);
        }
        if (o.flags & FLAG_QUEUE == 0) return kind != 0 ? LimitExceeded.selector : InsufficientBalance.selector;
        _enqueue(o);
        return bytes4(0);
    }

    function _enqueue(PaymentOrder calldata o) private {
        uint56 seq = ++_queueSeq;
        _queue[o.uetr] = Queued({
            debtor: o.debtor,
            currency: o.currency,
            flags: o.flags,
            held: false,
            seq: seq,
            creditor: o.creditor,
            amount: uint96(o.amount), // bounded by the InvalidOrder check
            instructionHash: o.instructionHash
        });
        _status[o.uetr] = STATUS_QUEUED;
        emit PaymentQueued(o.uetr, o.debtor, o.creditor, o.currency, o.amount, o.flags);
    }

    /// @dev Moves `amount` from debtor to creditor; callers have checked balance and limits.
    function _settle(bytes16 uetr, address debtor, address creditor, bytes3 currency, uint256 amount, bytes32 instructionHash)
        private
    {
        _recordOutflow(debtor, creditor, currency, amount);
        // Conservation: the debit and the credit are equal. Cannot underflow (balance >= amount
        // was checked) nor overflow (the creditor's balance is bounded by the supply).
        unchecked {
            _balances[debtor][currency] -= amount;
            _balances[creditor][currency] += amount;
        }
        _status[uetr] = STATUS_SETTLED;
        emit PaymentSettled(uetr, debtor, creditor, currency, amount, instructionHash);
    }

    /// @dev Returns (0,0,0) when `amount` fits every limit, else the limit kind (1 per payment,
    /// 2 daily outflow, 3 bilateral), the limit and what the total would have been.
    /// Per-payment and daily limits are the effective ones ({_effectiveLimits}).
    function _limitCheck(address debtor, address creditor, bytes3 currency, uint256 amount)
        private
        view
        returns (uint8 kind, uint256 limit, uint256 wouldBe)
    {
        Limits memory lim = _effectiveLimits(debtor, currency);
        if (lim.maxPerPayment != 0 && amount > lim.maxPerPayment) return (1, lim.maxPerPayment, amount);
        uint64 today = uint64(block.timestamp / 1 days);
        if (lim.maxDailyOutflow != 0) {
            DayCounter storage c = _outflow[debtor][currency];
            wouldBe = (c.day == today ? c.amount : 0) + amount;
            if (wouldBe > lim.maxDailyOutflow) return (2, lim.maxDailyOutflow, wouldBe);
        }
        BilateralCap storage b = _bilateral[debtor][creditor][currency];
        if (b.maxDaily != 0) {
            wouldBe = (b.day == today ? b.spent : 0) + amount;
            if (wouldBe > b.maxDaily) return (3, b.maxDaily, wouldBe);
        }
        return (0, 0, 0);
    }

    /// @dev The limits in force: per kind, the stricter non-zero of the operator cap and the
    /// participant's own limit (0 = unlimited). {_setOwnLimits} keeps own <= cap when set, but a
    /// cap lowered later must still bind, hence the minimum rather than "own if set".
    function _effectiveLimits(address participant, bytes3 currency) private view returns (Limits memory lim) {
        Limits memory cap = _limits[participant][currency];
        Limits memory own = _ownLimits[participant][currency];
        lim.maxPerPayment = _stricter(cap.maxPerPayment, own.maxPerPayment);
        lim.maxDailyOutflow = _stricter(cap.maxDailyOutflow, own.maxDailyOutflow);
    }

    /// @dev The smaller of two limits where 0 means "no limit".
    function _stricter(uint128 a, uint128 b) private pure returns (uint128) {
        if (a == 0) return b;
        if (b == 0) return a;
        return a < b ? a : b;
    }

    /// @dev Stores a participant's own limits after checking them against the operator caps.
    function _setOwnLimits(address participant, bytes3 currency, uint128 maxPerPayment, uint128 maxDailyOutflow)
        private
    {
        if (_registry.bicOf(participant) == bytes11(0)) revert NotActive(participant);
        Limits memory cap = _limits[participant][currency];
        if (cap.maxPerPayment != 0 && maxPerPayment > cap.maxPerPayment) {
            revert LimitAboveCap(participant, currency, 1, cap.maxPerPayment, maxPerPayment);
        }
        if (cap.maxDailyOutflow != 0 && maxDailyOutflow > cap.maxDailyOutflow) {
            revert LimitAboveCap(participant, currency, 2, cap.maxDailyOutflow, maxDailyOutflow);
        }
        _ownLimits[participant][currency] = Limits(maxPerPayment, maxDailyOutflow);
        emit OwnLimitsChanged(participant, currency, maxPerPayment, maxDailyOutflow);
    }

    /// @dev Adds `amount` to the debtor's outflow of the current UTC day (always, so a daily
    /// limit set later in the day sees what was already paid) and to a bilateral cap's counter.
    function _recordOutflow(address debtor, address creditor, bytes3 currency, uint256 amount) private {
        uint64 today = uint64(block.timestamp / 1 days);
        DayCounter storage c = _outflow[debtor][currency];
        // Cannot overflow: amounts are below 2^96 and no day sees 2^96 payments.
        unchecked {
            c.amount = c.day == today ? c.amount + uint192(amount) : uint192(amount);
        }
        c.day = today;
        BilateralCap storage b = _bilateral[debtor][creditor][currency];
        if (b.maxDaily != 0) {
            // Bounded by the cap (uint96), which _limitCheck enforced.
            b.spent = uint96((b.day == today ? b.spent : 0) + amount);
            b.day = today;
        }
    }

    function _orderDigest(PaymentOrder calldata o) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    PAYMENT_ORDER_TYPEHASH,
                    o.uetr,
                    o.debtor,
                    o.creditor,
                    o.currency,
                    o.amount,
                    o.flags,
                    o.deadline,
                    o.instructionHash
                )
            )
        );
    }

    /// @dev Reverts with the custom error, and its values, behind a rejection selector.
    function _raise(PaymentOrder calldata o, bytes4 reason) private view {
        if (reason == DuplicateUetr.selector) revert DuplicateUetr(o.uetr);
        if (reason == OrderExpired.selector) revert OrderExpired(o.deadline);
        if (reason == InvalidSignature.selector) revert InvalidSignature();
        if (reason == InvalidOrder.selector) revert InvalidOrder(o.uetr);
        if (reason == NotActive.selector) revert NotActive(_registry.isActive(o.debtor) ? o.creditor : o.debtor);
        if (reason == LimitExceeded.selector) {
            (uint8 kind, uint256 limit, uint256 wouldBe) = _limitCheck(o.debtor, o.creditor, o.currency, o.amount);
            revert LimitExceeded(o.debtor, o.currency, kind, limit, wouldBe);
        }
        revert InsufficientBalance(o.debtor, o.currency, _balances[o.debtor][o.currency], o.amount);
    }
}
