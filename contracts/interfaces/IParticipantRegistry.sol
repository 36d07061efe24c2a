// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Participant registry of the settlement ledger
/// @notice Who may take part in settlement: each participant is an address (its signing
/// key) with a BIC, a country, roles and a status. Only active participants can pay or
/// be paid.
/// @dev Invariant: `participantOf(bicOf(a)) == a` for every registered `a`, and a BIC or
/// an address is registered at most once.
interface IParticipantRegistry {
    /// @notice Emitted when the operator registers a participant.
    /// @param participant The participant's signing address.
    /// @param bic Its BIC11 (ASCII, BIC8 padded with "XXX").
    /// @param country ISO 3166 alpha-2 country code (ASCII).
    /// @param roles Bit set of ROLE_BANK, ROLE_FX_PROVIDER, ROLE_AUDITOR.
    event ParticipantRegistered(address indexed participant, bytes11 indexed bic, bytes2 country, uint8 roles);

    /// @notice Emitted when a participant is suspended (`active == false`) or reinstated.
    event ParticipantStatusChanged(address indexed participant, bool active);

    /// @notice Thrown when registering an address that is already registered.
    error ParticipantAlreadyRegistered(address participant);

    /// @notice Thrown when registering a BIC that already belongs to a participant.
    error BicAlreadyRegistered(bytes11 bic, address holder);

    /// @notice Thrown when an address, BIC, country or role set is empty or malformed.
    error InvalidParticipant(address participant, bytes11 bic, bytes2 country, uint8 roles);

    /// @notice Thrown when acting on an address that is not registered.
    error ParticipantUnknown(address participant);

    /// @notice Thrown when a status change would not change anything.
    error ParticipantStatusUnchanged(address participant, bool active);

    /// @notice Registers a participant as active.
    /// @dev Requirements: caller has REGISTRAR_ROLE; address, BIC and country non-zero; roles
    /// a non-empty subset of the known roles; neither address nor BIC registered before.
    /// Emits a {ParticipantRegistered} event.
    function register(address participant, bytes11 bic, bytes2 country, uint8 roles) external;

    /// @notice Suspends an active participant: it can neither pay nor be paid.
    /// @dev Requirements: caller has REGISTRAR_ROLE. Emits {ParticipantStatusChanged}.
    function suspend(address participant) external;

    /// @notice Reinstates a suspended participant.
    /// @dev Requirements: caller has REGISTRAR_ROLE. Emits {ParticipantStatusChanged}.
    function reinstate(address participant) external;

    /// @notice The address registered for `bic`, or the zero address.
    function participantOf(bytes11 bic) external view returns (address);

    /// @notice The BIC registered for `participant`, or zero.
    function bicOf(address participant) external view returns (bytes11);

    /// @notice Whether `participant` is registered and not suspended.
    function isActive(address participant) external view returns (bool);

    /// @notice Whether both participants are registered and not suspended (one call for a payment).
    function areActive(address a, address b) external view returns (bool);

    /// @notice The roles bit set of `participant` (0 when unknown).
    function rolesOf(address participant) external view returns (uint8);

    /// @notice The country of `participant` (0 when unknown).
    function countryOf(address participant) external view returns (bytes2);

    /// @notice How many participants were ever registered.
    function participantCount() external view returns (uint256);

    /// @notice The `index`-th registered participant, in registration order.
    function participantAt(uint256 index) external view returns (address);
}
