// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title CdrBaseline: the original proof of concept's approach, for `cdrchain bench evm-baseline`
/// @notice One contract transaction per call, storing its caller, callee, times and disposition as
/// strings. cdrchain does not use it: it exists so that the benchmark measures what cdrchain
/// replaces, on the same machine.
contract CdrBaseline {
    struct Call {
        string caller;
        string callee;
        string startTime;
        string endTime;
        string disposition;
        address recorder;
    }

    mapping(string => Call) private calls;
    uint256 public count;

    event CallRecorded(string callId, address indexed recorder);

    /// @notice Records one call (the proof of concept's "update call state").
    function recordCall(
        string calldata callId,
        string calldata caller,
        string calldata callee,
        string calldata startTime,
        string calldata endTime,
        string calldata disposition
    ) external {
        calls[callId] = Call(caller, callee, startTime, endTime, disposition, msg.sender);
        count += 1;
        emit CallRecorded(callId, msg.sender);
    }

    /// @notice The recorded call, by its call id.
    function callOf(string calldata callId) external view returns (Call memory) {
        return calls[callId];
    }
}
