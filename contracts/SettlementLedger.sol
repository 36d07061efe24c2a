// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";
import {ISettlementLedger} from "./interfaces/ISettlementLedger.sol";
import {NetPositions} from "./libraries/NetPositions.sol";
import {ActiveSet} from "./libraries/ActiveSet.sol";

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

    /// @dev Most participants a batch remembers as active ({settleBatch}); beyond, it asks the registry.
    uint256 private constant _MAX_ACTIVE_CACHE = 64;

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
        // Create the account's daily outflow counter now, as day 1 (1970-01-02, never today: it
        // counts as nothing paid), so the account's first payment, or the gridlock settlement that
        // nets it, rewrites a slot (2,900 gas) instead of creating one (20,000).
        DayCounter storage c = _outflow[participant][currency];
        if (c.day == 0) c.day = 1;
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
        bytes4 reason = _process(order, signature, ActiveSet.create(0));
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
        // Parties found active by an earlier item: nothing in this call can change the registry.
        ActiveSet.Set memory active = ActiveSet.create(2 * n < _MAX_ACTIVE_CACHE ? 2 * n : _MAX_ACTIVE_CACHE);
        for (uint256 i; i < n; ++i) {
            bytes4 reason = _process(orders[i], signatures[i], active);
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
    /// in memory ({NetPositions}), then one balance write per (participant, currency). Measured
    /// (1,000 payments): ~15.8k gas per payment among 4 banks; ~16.9k among 64 funded banks that
    /// have not paid today, ~16.5k with an EIP-2930 access list (each payment's four slots
    /// pre-warmed), which fits the 16,777,216 gas cap; larger sets go through {reserveGridlock} /
    /// {commitGridlock}. Per payment, ~14.3k of it is fixed by the EVM's schedule: four cold slot
    /// reads (status, three queue slots), the status rewrite, the PaymentSettled log, calldata.
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
    /// `active` holds the parties already found active in this call (an empty set for one payment).
    /// The order's words are read from calldata once, each checked clean as Solidity's decoder
    /// would (a dirty one reverts), and the digest hashes them in place ({_structHash}).
    function _process(PaymentOrder calldata o, bytes calldata signature, ActiveSet.Set memory active)
        private
        returns (bytes4 reason)
    {
        uint256 statusSlot;
        uint256 deadline;
        assembly ("memory-safe") {
            let uetr := calldataload(o)
            deadline := calldataload(add(o, 0xc0))
            if or(shl(128, uetr), shr(64, deadline)) { revert(0, 0) }
            mstore(0x00, uetr)
            mstore(0x20, _status.slot)
            statusSlot := keccak256(0x00, 0x40)
        }
        if (_load(statusSlot) != STATUS_UNKNOWN) return DuplicateUetr.selector;
        if (deadline < block.timestamp) return OrderExpired.selector;
        (address signer, ECDSA.RecoverError err,) =
            ECDSA.tryRecoverCalldata(_hashTypedDataV4(_structHash(o)), signature);
        address debtor;
        assembly ("memory-safe") {
            debtor := calldataload(add(o, 0x20))
        }
        if (err != ECDSA.RecoverError.NoError || signer != debtor) return InvalidSignature.selector;

        reason = _acceptOrReason(o, debtor, statusSlot, active);
        if (reason != bytes4(0)) _store(statusSlot, STATUS_REJECTED);
    }

    /// @dev After the signature: validity, registry, limits, balance; settles (see {_settleChecked}),
    /// queues or returns the rejection.
    function _acceptOrReason(PaymentOrder calldata o, address debtor, uint256 statusSlot, ActiveSet.Set memory active)
        private
        returns (bytes4)
    {
        address creditor;
        uint256 amount;
        assembly ("memory-safe") {
            creditor := calldataload(add(o, 0x40))
            amount := calldataload(add(o, 0x80))
        }
        if (amount == 0 || amount > type(uint96).max || debtor == creditor) return InvalidOrder.selector;
        // Registry and pause: the pause was checked once for the call (whenNotPaused); a party is
        // asked of the registry until this call found it active. Nothing in this call can change
        // the registry (its address is immutable, it is only read, with staticcall), so a party
        // found active stays active for the rest of the call, and a suspended one is never added.
        if (!ActiveSet.contains(active, debtor) || !ActiveSet.contains(active, creditor)) {
            if (!_registry.areActive(debtor, creditor)) return NotActive.selector;
            ActiveSet.add(active, debtor);
            ActiveSet.add(active, creditor);
        }
        uint8 kind = _settleChecked(o, debtor, creditor, amount, statusSlot);
        if (kind == 0) return bytes4(0);
        // A per-payment limit can never be met later; a daily one can, so a queued order waits.
        if (kind == 1) return LimitExceeded.selector;
        if (o.flags & FLAG_QUEUE == 0) return kind != 4 ? LimitExceeded.selector : InsufficientBalance.selector;
        _enqueue(o);
        return bytes4(0);
    }

    /// @dev {_limitCheck}, the balance check and {_settle} in one pass, each storage slot located
    /// once: returns 0 when settled, else the limit kind (1, 2, 3) or 4 for a short balance, and
    /// then changes nothing. Storage layouts read here: Limits (maxPerPayment low 128 bits,
    /// maxDailyOutflow high), DayCounter (day low 64, amount high 192), BilateralCap (day low 64,
    /// spent 64..159, maxDaily high 96).
    function _settleChecked(PaymentOrder calldata o, address debtor, address creditor, uint256 amount, uint256 statusSlot)
        private
        returns (uint8 kind)
    {
        bytes3 currency = o.currency;
        uint256 today = uint64(block.timestamp / 1 days);
        uint256 lim = _load(_slot2(debtor, currency, _base_effective()));
        // Per payment (low 128 bits), then the day's outflow (high 128 bits); 0 = no limit.
        if (uint128(lim) != 0 && amount > uint128(lim)) return 1;
        uint256 outSlot = _slot2(debtor, currency, _base_outflow());
        uint256 out = _load(outSlot);
        // Cannot overflow: amounts are below 2^96 and the counter below 2^192.
        unchecked {
            out = (uint64(out) != today ? 0 : out >> 64) + amount;
        }
        if (lim >> 128 != 0 && out > lim >> 128) return 2;
        // A pair's cap is read only when the debtor has one in this currency (one slot, not one per pair).
        uint256 capSlot = 0;
        uint256 cap = 0;
        if (_load(_slot2(debtor, currency, _base_bilateralCaps())) != 0) {
            capSlot = _slot3(debtor, creditor, currency, _base_bilateral());
            cap = _load(capSlot);
            if (cap >> 160 != 0) {
                // Cannot overflow: spent is below 2^96 and so is amount.
                unchecked {
                    cap = (uint64(cap) != today ? 0 : uint96(cap >> 64)) + amount;
                }
                if (cap > _load(capSlot) >> 160) return 3;
            } else {
                capSlot = 0;
            }
        }
        uint256 debtorSlot = _slot2(debtor, currency, _base_balances());
        uint256 balance = _load(debtorSlot);
        if (balance < amount) return 4;
        // Conservation: the debit and the credit are equal. Cannot underflow (balance >= amount was
        // checked; debtor != creditor) nor overflow (the creditor's balance is bounded by the supply).
        // The day's outflow: out < 2^192 (see above); the pair's spent: cap <= maxDaily < 2^96.
        unchecked {
            _store(outSlot, out << 64 | today);
            if (capSlot != 0) _store(capSlot, _load(capSlot) >> 160 << 160 | cap << 64 | today);
            _store(debtorSlot, balance - amount);
            uint256 creditorSlot = _slot2(creditor, currency, _base_balances());
            _store(creditorSlot, _load(creditorSlot) + amount);
        }
        _store(statusSlot, STATUS_SETTLED);
        _emitSettled(o, debtor, creditor, amount);
    }

    /// @dev PaymentSettled(uetr, debtor, creditor, currency, amount, instructionHash) from the
    /// order's words, which {_structHash} checked clean: the same log Solidity's emit writes.
    function _emitSettled(PaymentOrder calldata o, address debtor, address creditor, uint256 amount) private {
        bytes32 topic = PaymentSettled.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, calldataload(add(o, 0x60)))
            mstore(add(ptr, 0x20), amount)
            mstore(add(ptr, 0x40), calldataload(add(o, 0xe0)))
            log4(ptr, 0x60, topic, calldataload(o), debtor, creditor)
        }
    }

    /// @dev keccak256(abi.encode(PAYMENT_ORDER_TYPEHASH, o.uetr, ..., o.instructionHash)): the
    /// order's eight static words hashed where they lie, after checking each is clean (abi.encode
    /// of the decoded fields writes exactly these words; a dirty one reverts, as the decoder does).
    function _structHash(PaymentOrder calldata o) private pure returns (bytes32 h) {
        bytes32 typeHash = PAYMENT_ORDER_TYPEHASH;
        assembly ("memory-safe") {
            if or(
                or(shl(128, calldataload(o)), shr(160, calldataload(add(o, 0x20)))),
                or(
                    or(shr(160, calldataload(add(o, 0x40))), shl(24, calldataload(add(o, 0x60)))),
                    or(shr(8, calldataload(add(o, 0xa0))), shr(64, calldataload(add(o, 0xc0))))
                )
            ) { revert(0, 0) }
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            calldatacopy(add(ptr, 0x20), o, 0x100)
            h := keccak256(ptr, 0x120)
        }
    }

    /// @dev The storage slot of `m[a][c]` for a mapping(address => mapping(bytes3 => T)) at `base`.
    /// Keys must be clean (an address's high bits, a bytes3's low ones zero): the callers pass the
    /// order's words {_structHash} checked, and `o.currency` as Solidity's decoder checked it.
    function _slot2(address a, bytes3 c, uint256 base) private pure returns (uint256 s) {
        assembly ("memory-safe") {
            mstore(0x00, a)
            mstore(0x20, base)
            mstore(0x20, keccak256(0x00, 0x40))
            mstore(0x00, c)
            s := keccak256(0x00, 0x40)
        }
    }

    /// @dev The storage slot of `m[a][b][c]` for mapping(address => mapping(address => mapping(bytes3 => T)));
    /// keys cleaned first (this one is off the common path).
    function _slot3(address a, address b, bytes3 c, uint256 base) private pure returns (uint256 s) {
        assembly ("memory-safe") {
            let addressMask := 0xffffffffffffffffffffffffffffffffffffffff
            mstore(0x00, and(a, addressMask))
            mstore(0x20, base)
            mstore(0x20, keccak256(0x00, 0x40))
            mstore(0x00, and(b, addressMask))
            mstore(0x20, keccak256(0x00, 0x40))
            mstore(0x00, and(c, shl(232, 0xffffff)))
            s := keccak256(0x00, 0x40)
        }
    }

    /// @dev The base slots of the mappings {_settleChecked} reads.
    function _base_effective() private pure returns (uint256 s) {
        assembly ("memory-safe") {
            s := _effective.slot
        }
    }

    function _base_outflow() private pure returns (uint256 s) {
        assembly ("memory-safe") {
            s := _outflow.slot
        }
    }

    function _base_bilateralCaps() private pure returns (uint256 s) {
        assembly ("memory-safe") {
            s := _bilateralCaps.slot
        }
    }

    function _base_bilateral() private pure returns (uint256 s) {
        assembly ("memory-safe") {
            s := _bilateral.slot
        }
    }

    function _base_balances() private pure returns (uint256 s) {
        assembly ("memory-safe") {
            s := _balances.slot
        }
    }

    function _load(uint256 slot) private view returns (uint256 v) {
        assembly ("memory-safe") {
            v := sload(slot)
        }
    }

    function _store(uint256 slot, uint256 v) private {
        assembly ("memory-safe") {
            sstore(slot, v)
        }
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
        // A pair's cap is read only when the debtor has one in this currency (one slot, not one per pair).
        if (_bilateralCaps[debtor][currency] != 0) {
            BilateralCap storage b = _bilateral[debtor][creditor][currency];
            if (b.maxDaily != 0) {
                wouldBe = (b.day == today ? b.spent : 0) + amount;
                if (wouldBe > b.maxDaily) return (3, b.maxDaily, wouldBe);
            }
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
        if (_bilateralCaps[debtor][currency] == 0) return; // no pair of this debtor has a cap
        BilateralCap storage b = _bilateral[debtor][creditor][currency];
        if (b.maxDaily != 0) {
            // Bounded by the cap (uint96), which _limitCheck enforced.
            b.spent = uint96((b.day == today ? b.spent : 0) + amount);
            b.day = today;
        }
    }

    function _orderDigest(PaymentOrder calldata o) private view returns (bytes32) {
        return _hashTypedDataV4(_structHash(o));
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
    /// that have one (`_bilateralCaps`), in item order as before.
    function _gatherGridlock(bytes16[] calldata uetrs, uint8 newStatus) private returns (NetPositions.Table memory t) {
        uint256 n = uetrs.length;
        t = NetPositions.create(2 * n < _MAX_NET_ACCOUNTS ? 2 * n : _MAX_NET_ACCOUNTS);
        uint256 i;
        while (i < n) {
            uint256 capped;
            (i, capped) = _gatherItems(t, uetrs, i, newStatus);
            if (capped != 0) _bilateralSpendQueued(capped);
        }
    }

    /// @dev Gridlock items, each in one pass over storage: its status slot read and written once,
    /// each of its queue record's slots read once (the third only for the event). Checks it is
    /// queued and not held (else GridlockItemInvalid; marking it here also makes a UETR listed
    /// twice fail), moves it to `newStatus`, adds it to `t` ({NetPositions-find} inlined: same
    /// table, same probing; then its debit, credit and largest debit), emits PaymentSettled when
    /// `newStatus` is settled. Returns the record's slot when its debtor account has bilateral
    /// caps (t.flagged, read from `_bilateralCaps` when the account is first seen), else 0.
    /// Layout of {Queued}: debtor bits 0..159, currency 160..183, flags 184..191, held 192..199;
    /// creditor 0..159, amount 160..255; instructionHash.
    /// Processes items from `from` on and stops after the last one or after one whose debtor has
    /// caps (then `capped` != 0), so the caller counts that item's bilateral cap before the next.
    function _gatherItems(NetPositions.Table memory t, bytes16[] calldata uetrs, uint256 from, uint256 newStatus)
        private
        returns (uint256 next, uint256 capped)
    {
        // Literals, for stack room; tests/contracts/test_settlement_ledger_batch_checks.py checks them:
        // GridlockItemInvalid(bytes16) 0x802c9331, NetPositions.NetPositionsFull(uint256) 0x0e5e4d2b,
        // PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32) 0x42a62c10...2b8b.
        assembly ("memory-safe") {
            // The account number of `key` in `t`, added when new (NetPositions.find).
            function find(table, key) -> i, added {
                let slots := mload(add(table, 0x20))
                let keys := add(mload(add(table, 0x40)), 0x20)
                let mask := sub(mload(slots), 1)
                slots := add(slots, 0x20)
                let h := and(xor(key, mul(shr(160, key), 0x9E3779B1)), mask)
                for {} 1 {} {
                    let entry := mload(add(slots, shl(5, h)))
                    if iszero(entry) {
                        i := mload(table)
                        if eq(i, mload(sub(keys, 0x20))) {
                            mstore(0x00, shl(224, 0x0e5e4d2b))
                            mstore(0x04, i)
                            revert(0x00, 0x24)
                        }
                        mstore(add(keys, shl(5, i)), key)
                        mstore(table, add(i, 1))
                        mstore(add(slots, shl(5, h)), add(i, 1))
                        added := 1
                        break
                    }
                    if eq(mload(add(keys, shl(5, sub(entry, 1)))), key) {
                        i := sub(entry, 1)
                        break
                    }
                    h := and(add(h, 1), mask)
                }
            }
            // One item: the queue record's slot when its debtor account has caps, else 0.
            function item(table, uetr, status) -> capSlot {
                let qSlot
                let head
                {
                    mstore(0x00, uetr)
                    mstore(0x20, _status.slot)
                    let statusSlot := keccak256(0x00, 0x40)
                    mstore(0x20, _queue.slot)
                    qSlot := keccak256(0x00, 0x40)
                    head := sload(qSlot)
                    if or(iszero(eq(sload(statusSlot), STATUS_QUEUED)), and(shr(192, head), 0xff)) {
                        mstore(0x00, shl(224, 0x802c9331))
                        mstore(0x04, uetr)
                        revert(0x00, 0x24)
                    }
                    sstore(statusSlot, status)
                }
                let second := sload(add(qSlot, 1))
                let amount := shr(160, second)
                // Keys as NetPositions packs them: participant low 160 bits, currency the 24 above.
                let currencyBits := shl(160, and(shr(160, head), 0xffffff))
                {
                    let debtor := and(head, 0xffffffffffffffffffffffffffffffffffffffff)
                    let d, added := find(table, or(debtor, currencyBits))
                    let dOff := add(0x20, shl(5, d))
                    let flag := add(mload(add(table, 0xc0)), dOff)
                    if added {
                        // _bilateralCaps[debtor][currency] != 0
                        mstore(0x00, debtor)
                        mstore(0x20, _bilateralCaps.slot)
                        mstore(0x20, keccak256(0x00, 0x40))
                        mstore(0x00, shl(72, currencyBits))
                        mstore(flag, iszero(iszero(sload(keccak256(0x00, 0x40)))))
                    }
                    if mload(flag) { capSlot := qSlot }
                    // Unchecked: d (from find) is below the arrays' length; the sums
                    // stay below 2^128 (amounts below 2^96, fewer than 2^32 payments).
                    let slot := add(mload(add(table, 0x80)), dOff)
                    mstore(slot, add(mload(slot), amount))
                    slot := add(mload(add(table, 0xa0)), dOff)
                    if gt(amount, mload(slot)) { mstore(slot, amount) }
                }
                {
                    let c, cAdded := find(table, or(and(second, 0xffffffffffffffffffffffffffffffffffffffff), currencyBits))
                    let slot := add(add(mload(add(table, 0x60)), 0x20), shl(5, c))
                    mstore(slot, add(mload(slot), amount))
                }
                if eq(status, STATUS_SETTLED) {
                    let ptr := mload(0x40)
                    mstore(ptr, shl(72, currencyBits))
                    mstore(add(ptr, 0x20), amount)
                    mstore(add(ptr, 0x40), sload(add(qSlot, 2)))
                    let addressMask := 0xffffffffffffffffffffffffffffffffffffffff
                    log4(ptr, 0x60, 0x42a62c103150d09c1850dfcb58c61616864090ea370a56572bc9c5878e702b8b, uetr,
                        and(head, addressMask), and(second, addressMask))
                }
            }
            let n := uetrs.length
            for { next := from } lt(next, n) {} {
                let uetr := calldataload(add(uetrs.offset, shl(5, next)))
                if shl(128, uetr) { revert(0, 0) } // not a clean bytes16: as Solidity's decoder
                capped := item(t, uetr, newStatus)
                next := add(next, 1)
                if capped { break }
            }
        }
    }

    /// @dev {_bilateralSpend} for the queued payment whose record is at `qSlot`.
    function _bilateralSpendQueued(uint256 qSlot) private {
        uint256 head = _load(qSlot);
        uint256 second = _load(qSlot + 1);
        _bilateralSpend(
            address(uint160(head)), address(uint160(second)), bytes3(uint24(head >> 160)), second >> 160
        );
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
