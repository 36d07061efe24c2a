// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ISettlementLedger} from "contracts/interfaces/ISettlementLedger.sol";

/// @title HostileRegistry (tests only)
/// @notice A participant registry that tries to re-enter the ledger from the one external call
/// the ledger makes while processing a payment (`areActive`), replaying the very order being
/// processed through `settleBatch` (it is given RELAYER_ROLE: the worst case).
/// @dev Deliberately NOT declared `is IParticipantRegistry`: its functions are non-view, which
/// the interface would forbid, so the re-entrant CALL compiles. The ledger still reaches them
/// through the view interface, i.e. with STATICCALL: the replay can change no state.
///
/// Modes: 0 honest (no re-entry, answers true), 1 greedy (re-enters, answers true whatever
/// happened), 2 telltale (re-enters, answers whether the re-entry succeeded: a payment then
/// rejected NotActive proves the re-entrant call failed).
contract HostileRegistry {
    uint256 private constant REENTRY_GAS = 400_000;
    uint256 private constant NESTED_GAS = 1_000_000;
    ISettlementLedger public ledger;
    uint8 public mode;
    ISettlementLedger.PaymentOrder[] private _orders;
    bytes[] private _signatures;
    mapping(address => bytes11) private _bics;

    function register(address participant, bytes11 bic) external {
        _bics[participant] = bic;
    }

    function arm(ISettlementLedger ledger_, uint8 mode_, ISettlementLedger.PaymentOrder calldata order, bytes calldata signature)
        external
    {
        ledger = ledger_;
        mode = mode_;
        delete _orders;
        delete _signatures;
        _orders.push(order);
        _signatures.push(signature);
    }

    function areActive(address, address) external returns (bool) {
        // Only the outermost call re-enters (nested ones, inside the replay, have less gas than
        // this): one replay per payment, and enough gas left for the ledger to finish its work.
        if (mode == 0 || gasleft() < NESTED_GAS) return true;
        bool reentered;
        try ledger.settleBatch{gas: REENTRY_GAS}(_orders, _signatures) {
            reentered = true;
        } catch {
            reentered = false;
        }
        return mode == 1 ? true : reentered;
    }

    function isActive(address) external returns (bool) {
        if (mode == 0 || gasleft() < NESTED_GAS) return true;
        try ledger.settleBatch{gas: REENTRY_GAS}(_orders, _signatures) {
            return true;
        } catch {
            return mode == 1;
        }
    }

    function bicOf(address participant) external view returns (bytes11) {
        return _bics[participant];
    }

    function rolesOf(address) external pure returns (uint8) {
        return 1;
    }
}
