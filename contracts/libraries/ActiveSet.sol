// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Participants already found active during one call, in memory
/// @notice A small open-addressing set of addresses, so that a batch asks the registry once per
/// participant rather than once per payment (a warm external call costs ~1,000 gas, a lookup here
/// ~60).
/// @dev Memory only, so it lives for one call; the caller guarantees the registry cannot change
/// during that call. A set created with capacity 0 holds nothing and answers "unknown" for every
/// address (a single payment gains nothing from it). Bounded cost: the table has at most 128
/// words (capacity <= 64, see the caller) and a lookup probes at most {_MAX_PROBES} slots. An
/// address that does not fit (set full, or its probe run taken) is not added: a miss only costs
/// the registry call the caller would have made anyway. The zero address is never held (it marks
/// an empty slot) and is never reported as held.
library ActiveSet {
    /// @dev `table` points at `mask + 1` words (a power of two, >= 2 * capacity); `room` is how
    /// many more addresses may be added.
    struct Set {
        uint256 table;
        uint256 mask;
        uint256 room;
    }

    /// @dev Longest probe run a lookup walks: bounds a lookup's cost whatever the addresses' low bits.
    uint256 private constant _MAX_PROBES = 8;

    /// @notice An empty set for at most `capacity` addresses (0: a set that never holds any).
    function create(uint256 capacity) internal pure returns (Set memory s) {
        if (capacity == 0) return s;
        uint256 size = 2;
        while (size < 2 * capacity) size <<= 1;
        assembly ("memory-safe") {
            let table := mload(0x40)
            // Memory past the free pointer may hold scratch data: zero it (copying from past the
            // end of calldata writes zeros).
            calldatacopy(table, calldatasize(), shl(5, size))
            mstore(0x40, add(table, shl(5, size)))
            mstore(s, table)
        }
        s.mask = size - 1;
        s.room = capacity;
    }

    /// @notice Whether `a` was added.
    function contains(Set memory s, address a) internal pure returns (bool found) {
        assembly ("memory-safe") {
            a := and(a, 0xffffffffffffffffffffffffffffffffffffffff)
            let table := mload(s)
            if and(iszero(iszero(table)), iszero(iszero(a))) {
                let mask := mload(add(s, 0x20))
                let h := and(a, mask)
                for { let i := 0 } lt(i, _MAX_PROBES) { i := add(i, 1) } {
                    let entry := mload(add(table, shl(5, h)))
                    if eq(entry, a) {
                        found := 1
                        break
                    }
                    if iszero(entry) { break }
                    h := and(add(h, 1), mask)
                }
            }
        }
    }

    /// @notice Adds `a` (no-op when present, when `a` is zero, when the set is full or when
    /// `a`'s probe run has no free slot).
    function add(Set memory s, address a) internal pure {
        assembly ("memory-safe") {
            a := and(a, 0xffffffffffffffffffffffffffffffffffffffff)
            let room := mload(add(s, 0x40))
            if and(iszero(iszero(room)), iszero(iszero(a))) {
                let table := mload(s)
                let mask := mload(add(s, 0x20))
                let h := and(a, mask)
                for { let i := 0 } lt(i, _MAX_PROBES) { i := add(i, 1) } {
                    let p := add(table, shl(5, h))
                    let entry := mload(p)
                    if eq(entry, a) { break }
                    if iszero(entry) {
                        mstore(p, a)
                        mstore(add(s, 0x40), sub(room, 1))
                        break
                    }
                    h := and(add(h, 1), mask)
                }
            }
        }
    }
}
