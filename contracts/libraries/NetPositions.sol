// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Net positions of a set of payments, in memory
/// @notice A small open-addressing hash table from an account (participant, currency) to the
/// credits, debits and largest single debit of a set of payments, so a gridlock settlement
/// writes each balance once instead of twice per payment.
/// @dev Load factor at most 1/2 (the index has at least twice the capacity in slots), so a
/// probe always ends at an empty slot. Memory only: nothing here touches storage.
library NetPositions {
    /// @notice Thrown when a set of payments touches more accounts than a table holds.
    /// @param capacity The table's capacity (accounts).
    error NetPositionsFull(uint256 capacity);

    /// @notice One account's totals within the set; `flagged` is the caller's to use.
    struct Position {
        address participant;
        bytes3 currency;
        bool flagged;
        uint256 credit;
        uint256 debit;
        uint256 maxDebit;
    }

    /// @dev Positions 0..count-1 in order of first appearance; `index` maps a hash slot to the
    /// position's number + 1 (0 = empty slot).
    struct Table {
        uint256 count;
        uint256 mask;
        uint256[] index;
        Position[] positions;
    }

    /// @notice An empty table for at most `capacity` accounts.
    function create(uint256 capacity) internal pure returns (Table memory t) {
        uint256 slots = 2;
        while (slots < 2 * capacity) slots <<= 1;
        t.mask = slots - 1;
        t.index = new uint256[](slots);
        t.positions = new Position[](capacity);
    }

    /// @notice The position of (participant, currency), added when new.
    /// @return p The position (a reference: changes to it are the table's).
    /// @return added True when this call added it.
    function find(Table memory t, address participant, bytes3 currency)
        internal
        pure
        returns (Position memory p, bool added)
    {
        uint256 h = uint256(keccak256(abi.encodePacked(participant, currency))) & t.mask;
        while (true) {
            uint256 entry = t.index[h];
            if (entry == 0) {
                uint256 n = t.count;
                if (n == t.positions.length) revert NetPositionsFull(n);
                p = t.positions[n];
                (p.participant, p.currency) = (participant, currency);
                t.count = n + 1;
                t.index[h] = n + 1;
                return (p, true);
            }
            p = t.positions[entry - 1]; // entry >= 1 here
            if (p.participant == participant && p.currency == currency) return (p, false);
            h = (h + 1) & t.mask;
        }
    }
}
