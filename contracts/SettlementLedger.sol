// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {ISettlementLedger} from "./interfaces/ISettlementLedger.sol";
import {NetPositions} from "./libraries/NetPositions.sol";

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
/// WARNING: FX_SETTLER_ROLE debits the debtor of a cross-currency payment on the strength of
/// signatures the FxSettlement contract verified ({settleFxLegs}); grant it to that contract only.
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
    /// @dev The limits in force, the stricter of `_limits` and `_ownLimits`, kept up to date by
    /// {setLimits} and {_setOwnLimits} so a payment reads one slot, as before own limits existed.
    mapping(address participant => mapping(bytes3 currency => Limits)) private _effective;

    // ------------------------------------------- FX PvP and gridlock batches (issue 5)
    /// @notice A payment reserved for the open gridlock batch (paymentStatus 5): out of the queue.
    uint8 public constant STATUS_RESERVED = 5;
    /// @notice Held by the FxSettlement contract only: it verifies the debtor's and the provider's
    /// signatures and the quote, then asks {settleFxLegs} to move the money.
    bytes32 public constant FX_SETTLER_ROLE = keccak256("FX_SETTLER_ROLE");
    uint8 private constant _GRID_RESERVING = 1;
    uint8 private constant _GRID_COMMITTED = 2;
    uint8 private constant _GRID_RELEASED = 3;
    /// @dev Most accounts one gridlock call may touch (memory table; larger sets go in chunks).
    uint256 private constant _MAX_NET_ACCOUNTS = 512;

    /// @dev The open gridlock batch (at most one, so every reserved payment belongs to it).
    struct GridlockBatch {
        bytes32 id;
        uint8 state;
        uint32 reserved;
        uint32 closed;
    }

    /// @dev A reserved batch's totals on one account; two slots.
    struct BatchPosition {
        uint128 credit;
        uint128 debit;
        uint96 maxDebit;
    }

    struct Account {
        address participant;
        bytes3 currency;
    }

    /// @dev Bilateral caps in force per (debtor, currency): gridlock code reads a pair's cap only when non-zero.
    mapping(address debtor => mapping(bytes3 currency => uint256)) private _bilateralCaps;
    GridlockBatch private _gridlock;
    mapping(address participant => mapping(bytes3 currency => BatchPosition)) private _gridPositions;
    Account[] private _gridAccounts;

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
        _refreshEffectiveLimits(participant, currency);
        emit LimitsChanged(participant, currency, maxPerPayment, maxDailyOutflow);
    }

    /// @inheritdoc ISettlementLedger
    function setBilateralLimit(address debtor, address creditor, bytes3 currency, uint256 maxDaily)
        external
        onlyRole(OPERATOR_ROLE)
    {
        if (maxDaily > type(uint96).max) revert InvalidFunding(debtor, currency, maxDaily);
        BilateralCap storage cap = _bilateral[debtor][creditor][currency];
        // Count the debtor's caps in force, so gridlock settlement reads a pair's cap only when one may exist.
        if ((cap.maxDaily == 0) != (maxDaily == 0)) {
            if (maxDaily == 0) --_bilateralCaps[debtor][currency];
            else ++_bilateralCaps[debtor][currency];
        }
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
    /// @dev One pass over the payments (each read once, one status write, one event), net positions
    /// in memory ({NetPositions}), then one balance write per (participant, currency). Measured:
    /// ~16.8k gas per payment, ~16.4k with an EIP-2930 access list (the payments' four slots
    /// pre-warmed), so 1,000 payments among a few banks fit the 16,777,216 gas cap; larger sets go
    /// through {reserveGridlock} / {commitGridlock}.
    function settleGridlock(bytes16[] calldata uetrs) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        NetPositions.Table memory t = _gatherGridlock(uetrs, STATUS_SETTLED);
        (bytes4 reason, uint256 k) = _checkNets(t);
        if (reason != bytes4(0)) _raiseNet(t, k, reason);
        _applyNets(t);
        emit QueueBatchSettled(uetrs.length, true);
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

    // ============================================== FX payment-versus-payment (legs from FxSettlement)

    /// @inheritdoc ISettlementLedger
    function settleFxLegs(FxLegs calldata legs, bytes4 rejection)
        external
        onlyRole(FX_SETTLER_ROLE)
        whenNotPaused
        returns (bytes4 reason)
    {
        bytes16 uetr = legs.uetr;
        if (_status[uetr] != STATUS_UNKNOWN) reason = DuplicateUetr.selector;
        else if (rejection != bytes4(0)) reason = rejection;
        else reason = _settleFxLegs(legs);
        if (reason != bytes4(0)) {
            // As {_process}: a used UETR, a passed deadline or a signature that does not bind the
            // debtor change nothing; any other rejection consumes the UETR (the debtor signed it).
            if (reason != DuplicateUetr.selector && reason != OrderExpired.selector && reason != InvalidSignature.selector) {
                _status[uetr] = STATUS_REJECTED;
            }
            emit PaymentRejected(uetr, reason);
        }
    }

    // ================================================== gridlock batches (reserve, commit, close)

    /// @inheritdoc ISettlementLedger
    function reserveGridlock(bytes32 batchId, bytes16[] calldata uetrs) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        GridlockBatch storage g = _gridlock;
        if (g.state == 0) (g.id, g.state) = (batchId, _GRID_RESERVING);
        else if (g.id != batchId || g.state != _GRID_RESERVING) revert GridlockBatchState(batchId, g.id, g.state);
        NetPositions.Table memory t = _gatherGridlock(uetrs, STATUS_RESERVED);
        for (uint256 h; h < t.count; ++h) {
            (address p, bytes3 c) = NetPositions.account(t, h);
            BatchPosition storage pos = _gridPositions[p][c];
            if (pos.credit == 0 && pos.debit == 0) _gridAccounts.push(Account(p, c));
            // Amounts are below 2^96 and a batch holds fewer than 2^32 payments: the sums fit 128 bits.
            pos.credit += uint128(t.credit[h]);
            pos.debit += uint128(t.debit[h]);
            if (t.maxDebit[h] > pos.maxDebit) pos.maxDebit = uint96(t.maxDebit[h]);
        }
        uint32 reserved = g.reserved + uint32(uetrs.length);
        g.reserved = reserved;
        emit GridlockReserved(batchId, uetrs.length, reserved);
    }

    /// @inheritdoc ISettlementLedger
    function commitGridlock(bytes32 batchId) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        GridlockBatch storage g = _openBatch(batchId, _GRID_RESERVING);
        uint256 n = _gridAccounts.length;
        NetPositions.Table memory t = NetPositions.create(n);
        for (uint256 i; i < n; ++i) {
            Account storage a = _gridAccounts[i];
            BatchPosition storage pos = _gridPositions[a.participant][a.currency];
            (uint256 h,) = NetPositions.find(t, a.participant, a.currency);
            (t.credit[h], t.debit[h], t.maxDebit[h]) = (pos.credit, pos.debit, pos.maxDebit);
        }
        _clearPositions();
        (bytes4 reason, uint256 k) = _checkNets(t);
        if (reason != bytes4(0)) {
            g.state = _GRID_RELEASED;
            (address p, bytes3 c) = NetPositions.account(t, k);
            emit GridlockReleased(batchId, reason, p, c);
            return;
        }
        _applyNets(t);
        g.state = _GRID_COMMITTED;
        emit GridlockCommitted(batchId, g.reserved, n);
    }

    /// @inheritdoc ISettlementLedger
    function releaseGridlock(bytes32 batchId) external onlyRole(OPERATOR_ROLE) {
        _openBatch(batchId, _GRID_RESERVING).state = _GRID_RELEASED;
        _clearPositions();
        emit GridlockReleased(batchId, bytes4(0), address(0), bytes3(0));
    }

    /// @inheritdoc ISettlementLedger
    function closeGridlock(bytes32 batchId, bytes16[] calldata uetrs) external onlyRole(OPERATOR_ROLE) {
        GridlockBatch storage g = _gridlock;
        bool committed = g.state == _GRID_COMMITTED;
        if (g.id != batchId || (!committed && g.state != _GRID_RELEASED)) revert GridlockBatchState(batchId, g.id, g.state);
        uint256 closed;
        for (uint256 i; i < uetrs.length; ++i) {
            bytes16 uetr = uetrs[i];
            // Only one batch is open, so a reserved payment is one of its payments.
            if (_status[uetr] != STATUS_RESERVED) continue;
            Queued storage q = _queue[uetr];
            if (committed) {
                _status[uetr] = STATUS_SETTLED;
                emit PaymentSettled(uetr, q.debtor, q.creditor, q.currency, q.amount, q.instructionHash);
            } else {
                _status[uetr] = STATUS_QUEUED;
                if (_bilateralCaps[q.debtor][q.currency] != 0) _bilateralRefund(q.debtor, q.creditor, q.currency, q.amount);
            }
            ++closed;
        }
        if (committed && closed != 0) emit QueueBatchSettled(closed, true);
        uint256 done = g.closed + closed;
        if (done == g.reserved) {
            delete _gridlock;
            emit GridlockClosed(batchId, committed, done);
        } else {
            g.closed = uint32(done);
        }
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

    /// @inheritdoc ISettlementLedger
    function gridlockBatch() external view returns (bytes32 batchId, uint8 state, uint256 reserved, uint256 closed) {
        GridlockBatch storage g = _gridlock;
        return (g.id, g.state, g.reserved, g.closed);
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
    /// participant's own limit (0 = unlimited), as {_refreshEffectiveLimits} last stored them.
    function _effectiveLimits(address participant, bytes3 currency) private view returns (Limits memory) {
        return _effective[participant][currency];
    }

    /// @dev Recomputes the limits in force after a cap or an own limit changed. {_setOwnLimits}
    /// keeps own <= cap when set, but a cap lowered later must still bind, hence the minimum
    /// rather than "own if set".
    function _refreshEffectiveLimits(address participant, bytes3 currency) private {
        Limits memory cap = _limits[participant][currency];
        Limits memory own = _ownLimits[participant][currency];
        _effective[participant][currency] =
            Limits(_stricter(cap.maxPerPayment, own.maxPerPayment), _stricter(cap.maxDailyOutflow, own.maxDailyOutflow));
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
        _refreshEffectiveLimits(participant, currency);
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

    // ======================================== internal: FX PvP and gridlock net positions (issue 5)

    /// @dev The ledger's checks of one PvP settlement, then its four movements; 0 or the selector.
    function _settleFxLegs(FxLegs calldata l) private returns (bytes4) {
        (address debtor, address provider, uint256 debit, uint256 amount) = (l.debtor, l.provider, l.debitAmount, l.creditAmount);
        (bytes3 x, bytes3 y) = (l.debitCurrency, l.creditCurrency);
        if (
            amount == 0 || amount > type(uint96).max || debit == 0 || debit > type(uint96).max || debtor == l.creditor
                || x == y
        ) return InvalidOrder.selector;
        if (!_registry.areActive(debtor, l.creditor) || !_registry.isActive(provider)) return NotActive.selector;
        (uint8 kind,,) = _limitCheck(debtor, provider, x, debit);
        if (kind != 0) return LimitExceeded.selector;
        if (_balances[debtor][x] < debit || _balances[provider][y] < amount) return InsufficientBalance.selector;
        _recordOutflow(debtor, provider, x, debit);
        // Conservation: each currency moves by one debit and one equal credit. No underflow (both
        // balances were checked; debtor == provider only cancels out), no overflow (a balance is
        // bounded by its currency's supply).
        unchecked {
            _balances[debtor][x] -= debit;
            _balances[provider][x] += debit;
            _balances[provider][y] -= amount;
            _balances[l.creditor][y] += amount;
        }
        _status[l.uetr] = STATUS_SETTLED;
        emit FxSettled(l.uetr, l.quoteId, provider, x, debit, y, amount);
        emit PaymentSettled(l.uetr, debtor, l.creditor, y, amount, l.instructionHash);
        return bytes4(0);
    }

    /// @dev One pass over gridlock items: each must be queued and not held; it is moved to
    /// `newStatus` (settled, with its {PaymentSettled}, or reserved) and added to the net positions.
    /// Bilateral caps are per payment pair, so they are checked and counted here, only for debtors
    /// that have one (`_bilateralCaps`).
    function _gatherGridlock(bytes16[] calldata uetrs, uint8 newStatus) private returns (NetPositions.Table memory t) {
        uint256 n = uetrs.length;
        t = NetPositions.create(2 * n < _MAX_NET_ACCOUNTS ? 2 * n : _MAX_NET_ACCOUNTS);
        for (uint256 i; i < n; ++i) {
            bytes16 uetr = uetrs[i];
            Queued storage q = _queue[uetr];
            (address debtor, bytes3 currency, bool held) = (q.debtor, q.currency, q.held);
            // Marking the item here also makes a UETR listed twice fail this check.
            if (_status[uetr] != STATUS_QUEUED || held) revert GridlockItemInvalid(uetr);
            _status[uetr] = newStatus;
            (address creditor, uint256 amount) = (q.creditor, q.amount);
            (uint256 d, bool added) = NetPositions.find(t, debtor, currency);
            if (added) t.flagged[d] = _bilateralCaps[debtor][currency] != 0;
            (uint256 c,) = NetPositions.find(t, creditor, currency);
            // Cannot overflow: amounts are below 2^96 and a set has fewer than 2^32 payments.
            unchecked {
                t.debit[d] += amount;
                t.credit[c] += amount;
            }
            if (amount > t.maxDebit[d]) t.maxDebit[d] = amount;
            if (t.flagged[d]) _bilateralSpend(debtor, creditor, currency, amount);
            if (newStatus == STATUS_SETTLED) {
                emit PaymentSettled(uetr, debtor, creditor, currency, amount, q.instructionHash);
            }
        }
    }

    /// @dev 0 when every account of `t` can take its net position, else the failing check's
    /// selector and the account's slot. Each account: active, balance + credits >= debits, and for
    /// a debtor its largest payment within the per-payment limit and its debits within the daily one.
    function _checkNets(NetPositions.Table memory t) private view returns (bytes4, uint256) {
        for (uint256 h; h < t.count; ++h) {
            (address p, bytes3 c) = NetPositions.account(t, h);
            if (!_registry.isActive(p)) return (NotActive.selector, h);
            if (_balances[p][c] + t.credit[h] < t.debit[h]) return (GridlockInfeasible.selector, h);
            if (t.debit[h] != 0) {
                (uint8 kind,,) = _netLimitCheck(p, c, t.debit[h], t.maxDebit[h]);
                if (kind != 0) return (LimitExceeded.selector, h);
            }
        }
        return (bytes4(0), 0);
    }

    /// @dev Reverts with the custom error, and its values, of a failed {_checkNets}.
    function _raiseNet(NetPositions.Table memory t, uint256 h, bytes4 reason) private view {
        (address p, bytes3 c) = NetPositions.account(t, h);
        if (reason == NotActive.selector) revert NotActive(p);
        if (reason == GridlockInfeasible.selector) revert GridlockInfeasible(p, c, _balances[p][c] + t.credit[h], t.debit[h]);
        (uint8 kind, uint256 limit, uint256 wouldBe) = _netLimitCheck(p, c, t.debit[h], t.maxDebit[h]);
        revert LimitExceeded(p, c, kind, limit, wouldBe);
    }

    /// @dev Applies checked net positions: one balance write per account, debits to the day's outflow.
    function _applyNets(NetPositions.Table memory t) private {
        for (uint256 h; h < t.count; ++h) {
            (address p, bytes3 c) = NetPositions.account(t, h);
            uint256 balance = _balances[p][c];
            // Conservation: every payment added its amount to one credit and one debit, so the
            // accounts' net positions sum to zero per currency. Cannot underflow: _checkNets.
            uint256 next = balance + t.credit[h] - t.debit[h];
            if (next != balance) _balances[p][c] = next;
            if (t.debit[h] != 0) _addOutflow(p, c, t.debit[h]);
        }
    }

    /// @dev The per-payment and daily limits of a debtor account for a whole gridlock set; as
    /// {_limitCheck}, (0,0,0) when within them.
    function _netLimitCheck(address p, bytes3 c, uint256 debit, uint256 maxDebit)
        private
        view
        returns (uint8, uint256, uint256)
    {
        Limits memory lim = _effectiveLimits(p, c);
        if (lim.maxPerPayment != 0 && maxDebit > lim.maxPerPayment) return (1, lim.maxPerPayment, maxDebit);
        if (lim.maxDailyOutflow != 0) {
            DayCounter storage dc = _outflow[p][c];
            uint256 wouldBe = (dc.day == uint64(block.timestamp / 1 days) ? dc.amount : 0) + debit;
            if (wouldBe > lim.maxDailyOutflow) return (2, lim.maxDailyOutflow, wouldBe);
        }
        return (0, 0, 0);
    }

    /// @dev Checks and counts one payment against its pair's bilateral cap (if any); reverts over it.
    function _bilateralSpend(address debtor, address creditor, bytes3 currency, uint256 amount) private {
        BilateralCap storage b = _bilateral[debtor][creditor][currency];
        if (b.maxDaily == 0) return;
        uint64 today = uint64(block.timestamp / 1 days);
        uint256 wouldBe = (b.day == today ? b.spent : 0) + amount;
        if (wouldBe > b.maxDaily) revert LimitExceeded(debtor, currency, 3, b.maxDaily, wouldBe);
        (b.day, b.spent) = (today, uint96(wouldBe)); // bounded by maxDaily (uint96)
    }

    /// @dev Gives back what a released reservation counted against its pair's bilateral cap today.
    function _bilateralRefund(address debtor, address creditor, bytes3 currency, uint256 amount) private {
        BilateralCap storage b = _bilateral[debtor][creditor][currency];
        if (b.day == uint64(block.timestamp / 1 days)) b.spent = b.spent > amount ? b.spent - uint96(amount) : 0;
    }

    /// @dev Adds `amount` to the debtor's outflow of the current UTC day.
    function _addOutflow(address debtor, bytes3 currency, uint256 amount) private {
        uint64 today = uint64(block.timestamp / 1 days);
        DayCounter storage c = _outflow[debtor][currency];
        // Cannot overflow: amounts are below 2^96 and no day sees 2^96 payments.
        unchecked {
            c.amount = c.day == today ? c.amount + uint192(amount) : uint192(amount);
        }
        c.day = today;
    }

    /// @dev The open batch, which must be `batchId` in `state`.
    function _openBatch(bytes32 batchId, uint8 state) private view returns (GridlockBatch storage g) {
        g = _gridlock;
        if (g.id != batchId || g.state != state) revert GridlockBatchState(batchId, g.id, g.state);
    }

    /// @dev Deletes the reserving batch's stored positions (commit read them; release drops them).
    function _clearPositions() private {
        for (uint256 i; i < _gridAccounts.length; ++i) {
            Account storage a = _gridAccounts[i];
            delete _gridPositions[a.participant][a.currency];
        }
        delete _gridAccounts;
    }
}
