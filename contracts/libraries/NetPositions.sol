// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Net positions of a set of payments, in memory
/// @notice An open-addressing hash table from an account (participant, currency) to the credits,
/// debits and largest single debit of a set of payments, so that a gridlock settlement writes
/// each balance once instead of twice per payment.
/// @dev Memory only. Accounts are numbered 0..count-1 in order of first appearance; their values
/// sit in dense arrays, so callers iterate over `count` accounts, not over the hash slots. A key
/// packs the participant (low 160 bits) and the currency (24 bits above), never 0 for a real
/// participant. At most half the hash slots are used, so a probe always ends at an empty slot.
library NetPositions {
    /// @notice Thrown when a set of payments touches more accounts than the table holds.
    /// @param capacity The table's capacity (accounts).
    error NetPositionsFull(uint256 capacity);

    struct Table {
        uint256 count;
        uint256[] slots; // hash slot -> account number + 1 (0 = empty)
        uint256[] keys; // account -> packed (participant, currency)
        uint256[] credit; // account -> sum of incoming payments
        uint256[] debit; // account -> sum of outgoing payments
        uint256[] maxDebit; // account -> largest outgoing payment
        bool[] flagged; // account -> the caller's mark (the ledger: "debtor has bilateral caps")
    }

    /// @notice An empty table for at most `capacity` accounts.
    function create(uint256 capacity) internal pure returns (Table memory t) {
        uint256 size = 2;
        while (size < 2 * capacity) size <<= 1;
        t.slots = new uint256[](size);
        t.keys = new uint256[](capacity);
        t.credit = new uint256[](capacity);
        t.debit = new uint256[](capacity);
        t.maxDebit = new uint256[](capacity);
        t.flagged = new bool[](capacity);
    }

    /// @notice The number of the account (participant, currency), added when new.
    /// @return i The account's number (index into the value arrays). @return added True when new.
    function find(Table memory t, address participant, bytes3 currency) internal pure returns (uint256 i, bool added) {
        uint256 key = uint256(uint160(participant)) | (uint256(uint24(currency)) << 160);
        (uint256[] memory slots, uint256[] memory keys) = (t.slots, t.keys);
        // Unchecked: slots.length is a power of two >= 2; h stays below it (masked); a used slot holds
        // number + 1 >= 1; the multiplication is only a bit mixer (wrapping is harmless).
        unchecked {
            uint256 mask = slots.length - 1;
            // Addresses are keccak-derived, so their low bits already spread well: no hashing needed.
            uint256 h = (key ^ (uint256(uint24(currency)) * 0x9E3779B1)) & mask;
            uint256 entry = slots[h];
            while (entry != 0) {
                i = entry - 1;
                if (keys[i] == key) return (i, false);
                h = (h + 1) & mask;
                entry = slots[h];
            }
            i = t.count;
            if (i == keys.length) revert NetPositionsFull(i);
            keys[i] = key;
            t.count = i + 1;
            slots[h] = i + 1;
            return (i, true);
        }
    }

    /// @notice The account numbered `i`.
    function account(Table memory t, uint256 i) internal pure returns (address participant, bytes3 currency) {
        uint256 key = t.keys[i];
        return (address(uint160(key)), bytes3(uint24(key >> 160)));
    }
}
