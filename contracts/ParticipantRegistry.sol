// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IParticipantRegistry} from "./interfaces/IParticipantRegistry.sol";

/// @title ParticipantRegistry
/// @notice The directory of settlement participants, administered by the operator.
/// @dev Invariants: an address and a BIC are each registered at most once, and never
/// unregistered (suspension keeps the history intact for auditors);
/// `participantOf(bicOf(a)) == a` for every registered `a`.
contract ParticipantRegistry is AccessControl, IParticipantRegistry {
    /// @notice Role allowed to register, suspend and reinstate participants.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    uint8 public constant ROLE_BANK = 1;
    uint8 public constant ROLE_FX_PROVIDER = 2;
    uint8 public constant ROLE_AUDITOR = 4;
    uint8 private constant _ALL_ROLES = ROLE_BANK | ROLE_FX_PROVIDER | ROLE_AUDITOR;

    struct Participant {
        bytes11 bic;
        bytes2 country;
        uint8 roles;
        bool registered;
        bool active;
    }

    mapping(address participant => Participant) private _participants;
    mapping(bytes11 bic => address) private _byBic;
    address[] private _all;

    /// @param admin Receives DEFAULT_ADMIN_ROLE and REGISTRAR_ROLE.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    /// @inheritdoc IParticipantRegistry
    function register(address participant, bytes11 bic, bytes2 country, uint8 roles)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (participant == address(0) || bic == bytes11(0) || country == bytes2(0) || roles == 0
            || roles & ~_ALL_ROLES != 0) {
            revert InvalidParticipant(participant, bic, country, roles);
        }
        if (_participants[participant].registered) revert ParticipantAlreadyRegistered(participant);
        address holder = _byBic[bic];
        if (holder != address(0)) revert BicAlreadyRegistered(bic, holder);

        _participants[participant] = Participant({bic: bic, country: country, roles: roles, registered: true, active: true});
        _byBic[bic] = participant;
        _all.push(participant);
        emit ParticipantRegistered(participant, bic, country, roles);
    }

    /// @inheritdoc IParticipantRegistry
    function suspend(address participant) external onlyRole(REGISTRAR_ROLE) {
        _setActive(participant, false);
    }

    /// @inheritdoc IParticipantRegistry
    function reinstate(address participant) external onlyRole(REGISTRAR_ROLE) {
        _setActive(participant, true);
    }

    /// @inheritdoc IParticipantRegistry
    function participantOf(bytes11 bic) external view returns (address) {
        return _byBic[bic];
    }

    /// @inheritdoc IParticipantRegistry
    function bicOf(address participant) external view returns (bytes11) {
        return _participants[participant].bic;
    }

    /// @inheritdoc IParticipantRegistry
    function isActive(address participant) external view returns (bool) {
        return _participants[participant].active;
    }

    /// @inheritdoc IParticipantRegistry
    function areActive(address a, address b) external view returns (bool) {
        return _participants[a].active && _participants[b].active;
    }

    /// @inheritdoc IParticipantRegistry
    function rolesOf(address participant) external view returns (uint8) {
        return _participants[participant].roles;
    }

    /// @inheritdoc IParticipantRegistry
    function countryOf(address participant) external view returns (bytes2) {
        return _participants[participant].country;
    }

    /// @inheritdoc IParticipantRegistry
    function participantCount() external view returns (uint256) {
        return _all.length;
    }

    /// @inheritdoc IParticipantRegistry
    function participantAt(uint256 index) external view returns (address) {
        return _all[index];
    }

    function _setActive(address participant, bool active) private {
        Participant storage p = _participants[participant];
        if (!p.registered) revert ParticipantUnknown(participant);
        if (p.active == active) revert ParticipantStatusUnchanged(participant, active);
        p.active = active;
        emit ParticipantStatusChanged(participant, active);
    }
}
