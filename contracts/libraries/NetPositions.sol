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
        bytes4 full = NetPositionsFull.selector;
        // Probing as before, in assembly (no bounds checks needed): slots.length is a power of
        // two >= 2 and h is masked below it; a used slot holds number + 1 >= 1, so its number is
        // below count <= keys.length; the multiplication is only a bit mixer (wrapping is harmless).
        assembly ("memory-safe") {
            let slots := mload(add(t, 0x20))
            let keys := mload(add(t, 0x40))
            let mask := sub(mload(slots), 1)
            // Addresses are keccak-derived, so their low bits already spread well: no hashing needed.
            let h := and(xor(key, mul(shr(160, key), 0x9E3779B1)), mask)
            let found := 0
            for {} 1 {} {
                let entry := mload(add(add(slots, 0x20), shl(5, h)))
                if iszero(entry) { break }
                if eq(mload(add(add(keys, 0x20), shl(5, sub(entry, 1)))), key) {
                    found := entry
                    break
                }
                h := and(add(h, 1), mask)
            }
            switch found
            case 0 {
                i := mload(t)
                if eq(i, mload(keys)) {
                    mstore(0x00, full)
                    mstore(0x04, i)
                    revert(0x00, 0x24)
                }
                mstore(add(add(keys, 0x20), shl(5, i)), key)
                mstore(t, add(i, 1))
                mstore(add(add(slots, 0x20), shl(5, h)), add(i, 1))
                added := 1
            }
            default { i := sub(found, 1) }
        }
    }

    /// @notice The account numbered `i`.
    function account(Table memory t, uint256 i) internal pure returns (address participant, bytes3 currency) {
        uint256 key = t.keys[i];
        return (address(uint160(key)), bytes3(uint24(key >> 160)));
    }
}
