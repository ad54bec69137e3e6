// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {CdrCheckpoint} from "../src/CdrCheckpoint.sol";

/// @dev The few forge cheatcodes these tests use (forge-std is not available offline).
interface Vm {
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external pure returns (address);
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;
    function chainId(uint256 newChainId) external;
    function prank(address msgSender) external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;
}

/// @dev Deploys the contract for a validator set; the constructor's reverts surface to the caller.
contract Deployer {
    function deploy(bytes32 genesis, address[] memory validators, uint256 threshold) external returns (CdrCheckpoint) {
        return new CdrCheckpoint(genesis, validators, threshold);
    }
}

contract CdrCheckpointTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    // DSTest-style log events: forge prints them under "Logs:" with -vv.
    event log_named_bytes32(string key, bytes32 val);
    event log_named_uint(string key, uint256 val);
    event log_named_address(string key, address val);

    // Same declarations as in CdrCheckpoint, for expectEmit.
    event CheckpointStored(
        uint64 indexed height,
        bytes32 blockHash,
        bytes32 stateRoot,
        bytes32 cdrLogRoot,
        uint64 cdrLogSize,
        address submitter
    );
    event ValidatorsChanged(uint256 nonce, address[] validators, uint256 threshold);

    bytes32 internal constant GENESIS = 0x9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e;
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    // The independent EIP-712 definitions (literal type strings, not the contract's constants).
    string internal constant DOMAIN_TYPE =
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
    string internal constant CHECKPOINT_TYPE =
        "Checkpoint(bytes32 genesisHash,uint64 height,bytes32 blockHash,bytes32 stateRoot,bytes32 cdrLogRoot,uint64 cdrLogSize)";
    string internal constant VALIDATOR_SET_CHANGE_TYPE =
        "ValidatorSetChange(address[] validators,uint256 threshold,uint256 nonce)";

    // The README's test vector.
    address internal constant VECTOR_CONTRACT = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
    uint256 internal constant VECTOR_CHAIN_ID = 33;
    bytes32 internal constant VECTOR_DOMAIN_SEPARATOR =
        0xed4045da7bf91e132a43f28c61741910404e36d0c051b5cde2f5aaa728753f91;
    bytes32 internal constant VECTOR_DIGEST = 0xaecfe10b1fd0f442aea8733cfcfe080f44e85aee931e578812b8a3c0bd80dfcf;
    bytes32 internal constant VECTOR_R = 0x9e4db2f327f2f5d78271901b26e7604fb9bd5b1419ad24c15bf2675a33a1b135;
    bytes32 internal constant VECTOR_S = 0x2c9d77456b580d9a53652c75149bacfbc661b9991bc6fed8add395716bb2b257;
    uint8 internal constant VECTOR_V = 28;
    bytes32 internal constant VECTOR_CHANGE_DIGEST = 0x94f3b1253aebb3e67c4abcc0a78f17525cdbbb28876554782fdcdb7cf50b2373;
    bytes internal constant VECTOR_CHANGE_SIG =
        hex"16250f771c8af63722712ea04d0a3e8c336a2130f181bbf571c2a76e385a1e6c25bc6b4498b531aa32df8852a7af83effe0d74bc7d01f5fa5ea8889d49be3c341c";

    Deployer internal deployer = new Deployer();

    // ------------------------------------------------------------------ helpers

    /// @dev `n` validator keys (seeded by `seed`) sorted by ascending address, with the addresses.
    function makeSet(uint256 seed, uint256 n) internal pure returns (uint256[] memory keys, address[] memory addrs) {
        keys = new uint256[](n);
        addrs = new address[](n);
        for (uint256 i; i < n; ++i) {
            uint256 k = uint256(keccak256(abi.encode("cdrchain validator", seed, i))) % (SECP256K1_N - 1) + 1;
            address a = vm.addr(k);
            uint256 j = i;
            while (j > 0 && addrs[j - 1] > a) {
                addrs[j] = addrs[j - 1];
                keys[j] = keys[j - 1];
                --j;
            }
            addrs[j] = a;
            keys[j] = k;
        }
    }

    function first(uint256[] memory keys, uint256 count) internal pure returns (uint256[] memory out) {
        out = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            out[i] = keys[i];
        }
    }

    function sig(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev Signatures by `keys`, in the given order.
    function signAll(uint256[] memory keys, bytes32 digest) internal pure returns (bytes[] memory sigs) {
        sigs = new bytes[](keys.length);
        for (uint256 i; i < keys.length; ++i) {
            sigs[i] = sig(keys[i], digest);
        }
    }

    /// @dev The address a 65-byte signature recovers to for `digest` (what the contract sees).
    function recover(bytes32 digest, bytes memory signature) internal pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(signature, 0x20))
            s := mload(add(signature, 0x40))
            v := byte(0, mload(add(signature, 0x60)))
        }
        return ecrecover(digest, v, r, s);
    }

    /// @dev Expects NotAValidator for what signature 0 recovers to under `digest`.
    function expectNotAValidator(bytes32 digest, bytes[] memory sigs) internal {
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotAValidator.selector, recover(digest, sigs[0])));
    }

    function checkpoint(uint64 height) internal pure returns (CdrCheckpoint.Checkpoint memory) {
        return CdrCheckpoint.Checkpoint({
            genesisHash: GENESIS,
            height: height,
            blockHash: keccak256(abi.encode("block", height)),
            stateRoot: keccak256(abi.encode("state", height)),
            cdrLogRoot: keccak256(abi.encode("cdrlog", height)),
            cdrLogSize: height * 10
        });
    }

    function deploy(address[] memory validators, uint256 threshold) internal returns (CdrCheckpoint) {
        return deployer.deploy(GENESIS, validators, threshold);
    }

    /// @dev The EIP-712 digest computed from the literal type strings.
    function expectedDigest(uint256 chainId, address verifyingContract, bytes32 structHash)
        internal
        pure
        returns (bytes32)
    {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(bytes(DOMAIN_TYPE)),
                keccak256(bytes("CdrCheckpoint")),
                keccak256(bytes("1")),
                chainId,
                verifyingContract
            )
        );
        return keccak256(abi.encodePacked(bytes2(0x1901), domain, structHash));
    }

    function expectedCheckpointDigest(uint256 chainId, address verifyingContract, CdrCheckpoint.Checkpoint memory c)
        internal
        pure
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(bytes(CHECKPOINT_TYPE)),
                c.genesisHash,
                uint256(c.height),
                c.blockHash,
                c.stateRoot,
                c.cdrLogRoot,
                uint256(c.cdrLogSize)
            )
        );
        return expectedDigest(chainId, verifyingContract, structHash);
    }

    function expectedChangeDigest(
        uint256 chainId,
        address verifyingContract,
        address[] memory validators,
        uint256 threshold,
        uint256 nonce
    ) internal pure returns (bytes32) {
        bytes32[] memory padded = new bytes32[](validators.length);
        for (uint256 i; i < validators.length; ++i) {
            padded[i] = bytes32(uint256(uint160(validators[i])));
        }
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(bytes(VALIDATOR_SET_CHANGE_TYPE)), keccak256(abi.encodePacked(padded)), threshold, nonce
            )
        );
        return expectedDigest(chainId, verifyingContract, structHash);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": values differ"));
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": values differ"));
    }

    function assertTrue(bool ok, string memory what) internal pure {
        if (!ok) revert(what);
    }

    function assertStored(CdrCheckpoint c, CdrCheckpoint.Checkpoint memory want) internal view {
        assertEq(c.latestHeight(), want.height, "latestHeight");
        assertCheckpoint(c.latest(), want);
        assertCheckpoint(c.checkpointAt(want.height), want);
    }

    function assertCheckpoint(CdrCheckpoint.Checkpoint memory got, CdrCheckpoint.Checkpoint memory want) internal pure {
        assertEq(keccak256(abi.encode(got)), keccak256(abi.encode(want)), "checkpoint");
    }

    // ------------------------------------------------------------------ valid quorums

    function submitWithQuorum(uint256 n, uint256 threshold) internal {
        (uint256[] memory keys, address[] memory addrs) = makeSet(n, n);
        CdrCheckpoint c = deploy(addrs, threshold);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        bytes[] memory sigs = signAll(first(keys, threshold), c.checkpointDigest(cp));

        address relayer = address(0xBEEF);
        vm.expectEmit(true, true, true, true, address(c));
        emit CheckpointStored(cp.height, cp.blockHash, cp.stateRoot, cp.cdrLogRoot, cp.cdrLogSize, relayer);
        vm.prank(relayer);
        c.submitCheckpoint(cp, sigs);
        assertStored(c, cp);

        // The next one, signed by the last `threshold` validators.
        CdrCheckpoint.Checkpoint memory next = checkpoint(700);
        uint256[] memory tail = new uint256[](threshold);
        for (uint256 i; i < threshold; ++i) {
            tail[i] = keys[n - threshold + i];
        }
        c.submitCheckpoint(next, signAll(tail, c.checkpointDigest(next)));
        assertStored(c, next);
        assertCheckpoint(c.checkpointAt(600), cp);
    }

    function test_Submit_3of4() public {
        submitWithQuorum(4, 3);
    }

    function test_Submit_5of7() public {
        submitWithQuorum(7, 5);
    }

    function test_Submit_AllSignersAccepted() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(1);
        c.submitCheckpoint(cp, signAll(keys, c.checkpointDigest(cp)));
        assertStored(c, cp);
    }

    function test_Submit_SingleValidator() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(1, 1);
        CdrCheckpoint c = deploy(addrs, 1);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(5);
        c.submitCheckpoint(cp, signAll(keys, c.checkpointDigest(cp)));
        assertStored(c, cp);
    }

    function test_Submit_HeightsMayHaveGaps() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory a = checkpoint(1);
        CdrCheckpoint.Checkpoint memory b = checkpoint(1000);
        c.submitCheckpoint(a, signAll(first(keys, 3), c.checkpointDigest(a)));
        c.submitCheckpoint(b, signAll(first(keys, 3), c.checkpointDigest(b)));
        assertStored(c, b);
        assertCheckpoint(c.checkpointAt(1), a);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.UnknownCheckpoint.selector, uint64(500)));
        c.checkpointAt(500);
    }

    // ------------------------------------------------------------------ quorum failures

    function test_Revert_OneSignatureShort() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(7, 7);
        CdrCheckpoint c = deploy(addrs, 5);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        bytes[] memory sigs = signAll(first(keys, 4), c.checkpointDigest(cp));
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotEnoughSignatures.selector, uint256(4), uint256(5)));
        c.submitCheckpoint(cp, sigs);
    }

    function test_Revert_NoSignatures() public {
        (, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotEnoughSignatures.selector, uint256(0), uint256(3)));
        c.submitCheckpoint(checkpoint(1), new bytes[](0));
    }

    function test_Revert_DuplicateSigner() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        uint256[] memory signers = new uint256[](3);
        signers[0] = keys[0];
        signers[1] = keys[1];
        signers[2] = keys[1];
        bytes[] memory sigs = signAll(signers, c.checkpointDigest(cp));
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.SignersNotAscending.selector, uint256(2)));
        c.submitCheckpoint(cp, sigs);
    }

    function test_Revert_UnsortedSigners() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        uint256[] memory signers = new uint256[](3);
        signers[0] = keys[1];
        signers[1] = keys[0];
        signers[2] = keys[2];
        bytes[] memory sigs = signAll(signers, c.checkpointDigest(cp));
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.SignersNotAscending.selector, uint256(1)));
        c.submitCheckpoint(cp, sigs);
    }

    function test_Revert_NonValidatorSigner() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        // Two validators plus an outsider, sorted by address.
        (uint256[] memory outsiders,) = makeSet(99, 1);
        uint256[] memory signers = new uint256[](3);
        signers[0] = keys[0];
        signers[1] = keys[1];
        signers[2] = outsiders[0];
        for (uint256 i = 2; i > 0 && vm.addr(signers[i - 1]) > vm.addr(signers[i]); --i) {
            (signers[i - 1], signers[i]) = (signers[i], signers[i - 1]);
        }
        bytes[] memory sigs = signAll(signers, c.checkpointDigest(cp));
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotAValidator.selector, vm.addr(outsiders[0])));
        c.submitCheckpoint(cp, sigs);
    }

    // ------------------------------------------------------------------ heights and genesis

    function test_Revert_ReplaySameCheckpoint() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        bytes[] memory sigs = signAll(first(keys, 3), c.checkpointDigest(cp));
        c.submitCheckpoint(cp, sigs);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.HeightNotIncreasing.selector, uint64(600), uint64(600)));
        c.submitCheckpoint(cp, sigs);
    }

    function test_Revert_LowerHeight() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory high = checkpoint(600);
        CdrCheckpoint.Checkpoint memory low = checkpoint(599);
        bytes[] memory lowSigs = signAll(first(keys, 3), c.checkpointDigest(low));
        c.submitCheckpoint(high, signAll(first(keys, 3), c.checkpointDigest(high)));
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.HeightNotIncreasing.selector, uint64(599), uint64(600)));
        c.submitCheckpoint(low, lowSigs);
    }

    function test_Revert_HeightZero() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(0);
        bytes[] memory sigs = signAll(first(keys, 3), c.checkpointDigest(cp));
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.HeightNotIncreasing.selector, uint64(0), uint64(0)));
        c.submitCheckpoint(cp, sigs);
    }

    function test_Revert_WrongGenesis() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        cp.genesisHash = keccak256("another chain");
        bytes[] memory sigs = signAll(first(keys, 3), c.checkpointDigest(cp));
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.WrongGenesis.selector, cp.genesisHash));
        c.submitCheckpoint(cp, sigs);
    }

    function test_Views_BeforeFirstCheckpoint() public {
        (, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        assertEq(c.latestHeight(), 0, "latestHeight");
        assertEq(c.genesisHash(), GENESIS, "genesisHash");
        assertEq(c.threshold(), 3, "threshold");
        assertEq(c.nonce(), 0, "nonce");
        assertEq(keccak256(abi.encode(c.validators())), keccak256(abi.encode(addrs)), "validators");
        for (uint256 i; i < addrs.length; ++i) {
            assertTrue(c.isValidator(addrs[i]), "isValidator");
        }
        assertTrue(!c.isValidator(address(this)), "isValidator(outsider)");
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.UnknownCheckpoint.selector, uint64(0)));
        c.latest();
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.UnknownCheckpoint.selector, uint64(1)));
        c.checkpointAt(1);
    }

    // ------------------------------------------------------------------ domain binding

    function test_Revert_SignedForOtherChainId() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        vm.chainId(33);
        CdrCheckpoint c = deploy(addrs, 3);
        // Validators sign for RSK testnet (31), the relayer submits on regtest (33).
        bytes32 digest31 = expectedCheckpointDigest(31, address(c), cp);
        bytes[] memory sigs = signAll(first(keys, 3), digest31);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[0], digest31);
        address recovered = ecrecover(c.checkpointDigest(cp), v, r, s);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotAValidator.selector, recovered));
        c.submitCheckpoint(cp, sigs);
    }

    function test_Revert_ForkWithOtherChainIdCannotReplay() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        vm.chainId(31);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        bytes32 digest31 = c.checkpointDigest(cp);
        assertEq(digest31, expectedCheckpointDigest(31, address(c), cp), "digest on 31");
        bytes[] memory sigs = signAll(first(keys, 3), digest31);
        // A fork of the chain with another chain id: the cached domain separator is not used.
        vm.chainId(33);
        assertEq(c.checkpointDigest(cp), expectedCheckpointDigest(33, address(c), cp), "digest on 33");
        expectNotAValidator(c.checkpointDigest(cp), sigs);
        c.submitCheckpoint(cp, sigs);
        // Back on 31 the same signatures are fine.
        vm.chainId(31);
        c.submitCheckpoint(cp, sigs);
        assertStored(c, cp);
    }

    function test_Revert_SignedForOtherContract() public {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint a = deploy(addrs, 3);
        CdrCheckpoint b = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        bytes[] memory sigs = signAll(first(keys, 3), a.checkpointDigest(cp));
        expectNotAValidator(b.checkpointDigest(cp), sigs);
        b.submitCheckpoint(cp, sigs);
        a.submitCheckpoint(cp, sigs);
        assertStored(a, cp);
    }

    // ------------------------------------------------------------------ malformed signatures

    function malformed(bytes memory bad, uint256 position) internal {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        bytes[] memory sigs = signAll(first(keys, 3), c.checkpointDigest(cp));
        sigs[position] = bad;
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.BadSignature.selector, position));
        c.submitCheckpoint(cp, sigs);
    }

    function validSig(uint256 index) internal returns (bytes32 digest, uint8 v, bytes32 r, bytes32 s) {
        (uint256[] memory keys, address[] memory addrs) = makeSet(4, 4);
        CdrCheckpoint c = deploy(addrs, 3);
        digest = c.checkpointDigest(checkpoint(600));
        (v, r, s) = vm.sign(keys[index], digest);
    }

    function test_Revert_Signature64Bytes() public {
        (,, bytes32 r, bytes32 s) = validSig(1);
        malformed(abi.encodePacked(r, s), 1);
    }

    function test_Revert_Signature66Bytes() public {
        (, uint8 v, bytes32 r, bytes32 s) = validSig(0);
        malformed(abi.encodePacked(r, s, v, uint8(0)), 0);
    }

    function test_Revert_SignatureEmpty() public {
        malformed("", 2);
    }

    function test_Revert_SignatureHighS() public {
        (bytes32 digest, uint8 v, bytes32 r, bytes32 s) = validSig(2);
        // The malleable twin (n - s, flipped v) recovers the same signer, but EIP-2 forbids it.
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        (uint256[] memory keys,) = makeSet(4, 4);
        assertTrue(ecrecover(digest, flippedV, r, highS) == vm.addr(keys[2]), "twin recovers the signer");
        malformed(abi.encodePacked(r, highS, flippedV), 2);
    }

    function test_Revert_SignatureV29() public {
        (,, bytes32 r, bytes32 s) = validSig(0);
        malformed(abi.encodePacked(r, s, uint8(29)), 0);
    }

    function test_Revert_SignatureV0() public {
        (, uint8 v, bytes32 r, bytes32 s) = validSig(0);
        malformed(abi.encodePacked(r, s, v - 27), 0);
    }

    function test_Revert_SignatureUnrecoverable() public {
        (, uint8 v,, bytes32 s) = validSig(1);
        // r = 0 is not a curve point: ecrecover returns address(0).
        malformed(abi.encodePacked(bytes32(0), s, v), 1);
    }

    // ------------------------------------------------------------------ validator-set changes

    function signChange(
        CdrCheckpoint c,
        uint256[] memory signers,
        address[] memory newSet,
        uint256 newThreshold,
        uint256 nonce
    ) internal view returns (bytes[] memory) {
        return signAll(signers, c.validatorSetChangeDigest(newSet, newThreshold, nonce));
    }

    /// @dev A 3-of-4 contract with a checkpoint at 100, then changed to a 5-of-7 disjoint set.
    function changedContract()
        internal
        returns (
            CdrCheckpoint c,
            uint256[] memory oldKeys,
            address[] memory oldSet,
            uint256[] memory newKeys,
            address[] memory newSet
        )
    {
        (oldKeys, oldSet) = makeSet(4, 4);
        (newKeys, newSet) = makeSet(7, 7);
        c = deploy(oldSet, 3);
        CdrCheckpoint.Checkpoint memory cp1 = checkpoint(100);
        c.submitCheckpoint(cp1, signAll(first(oldKeys, 3), c.checkpointDigest(cp1)));

        bytes[] memory sigs = signChange(c, first(oldKeys, 3), newSet, 5, 0);
        vm.expectEmit(true, true, true, true, address(c));
        emit ValidatorsChanged(0, newSet, 5);
        c.changeValidators(newSet, 5, sigs);
    }

    function test_ChangeValidators_WithQuorum() public {
        (CdrCheckpoint c,, address[] memory oldSet,, address[] memory newSet) = changedContract();
        assertEq(c.nonce(), 1, "nonce");
        assertEq(c.threshold(), 5, "threshold");
        assertEq(keccak256(abi.encode(c.validators())), keccak256(abi.encode(newSet)), "validators");
        for (uint256 i; i < 4; ++i) {
            assertTrue(!c.isValidator(oldSet[i]), "old validator removed");
        }
        for (uint256 i; i < 7; ++i) {
            assertTrue(c.isValidator(newSet[i]), "new validator added");
        }
        assertStored(c, checkpoint(100));
    }

    function test_ChangeValidators_OldSetCanNoLongerSign() public {
        (
            CdrCheckpoint c,
            uint256[] memory oldKeys,
            address[] memory oldSet,
            uint256[] memory newKeys,
            address[] memory newSet
        ) = changedContract();
        CdrCheckpoint.Checkpoint memory cp2 = checkpoint(200);
        bytes32 digest = c.checkpointDigest(cp2);
        // All four old validators: fewer than the new threshold.
        bytes[] memory oldSigs = signAll(oldKeys, digest);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotEnoughSignatures.selector, uint256(4), uint256(5)));
        c.submitCheckpoint(cp2, oldSigs);
        // Four new validators plus an old one.
        bytes[] memory five = new bytes[](5);
        for (uint256 i; i < 4; ++i) {
            five[i] = sig(newKeys[i], digest);
        }
        five[4] = sig(oldKeys[3], digest);
        if (oldSet[3] > newSet[3]) {
            vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotAValidator.selector, oldSet[3]));
        } else {
            vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.SignersNotAscending.selector, uint256(4)));
        }
        c.submitCheckpoint(cp2, five);
        // Nor can it change the set again.
        bytes[] memory back = signChange(c, oldKeys, oldSet, 3, 1);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotEnoughSignatures.selector, uint256(4), uint256(5)));
        c.changeValidators(oldSet, 3, back);
    }

    function test_ChangeValidators_NewSetCanSign() public {
        (CdrCheckpoint c,, address[] memory oldSet, uint256[] memory newKeys,) = changedContract();
        CdrCheckpoint.Checkpoint memory cp2 = checkpoint(200);
        c.submitCheckpoint(cp2, signAll(first(newKeys, 5), c.checkpointDigest(cp2)));
        assertStored(c, cp2);
        bytes[] memory sigs = signChange(c, first(newKeys, 5), oldSet, 3, 1);
        vm.expectEmit(true, true, true, true, address(c));
        emit ValidatorsChanged(1, oldSet, 3);
        c.changeValidators(oldSet, 3, sigs);
        assertEq(c.nonce(), 2, "nonce after second change");
        assertEq(c.threshold(), 3, "threshold after second change");
        assertEq(keccak256(abi.encode(c.validators())), keccak256(abi.encode(oldSet)), "validators");
    }

    function test_ChangeValidators_OverlappingSet() public {
        // Grow 4 -> 5 keeping the four: the kept members stay validators.
        (uint256[] memory keys, address[] memory set5) = makeSet(5, 5);
        address[] memory set4 = new address[](4);
        uint256[] memory keys4 = new uint256[](4);
        for (uint256 i; i < 4; ++i) {
            set4[i] = set5[i];
            keys4[i] = keys[i];
        }
        CdrCheckpoint c = deploy(set4, 3);
        c.changeValidators(set5, 4, signChange(c, first(keys4, 3), set5, 4, 0));
        for (uint256 i; i < 5; ++i) {
            assertTrue(c.isValidator(set5[i]), "member");
        }
        CdrCheckpoint.Checkpoint memory cp = checkpoint(9);
        c.submitCheckpoint(cp, signAll(first(keys, 4), c.checkpointDigest(cp)));
        assertStored(c, cp);
    }

    function test_Revert_ChangeValidators_NotEnoughSignatures() public {
        (uint256[] memory keys, address[] memory oldSet) = makeSet(4, 4);
        (, address[] memory newSet) = makeSet(7, 7);
        CdrCheckpoint c = deploy(oldSet, 3);
        bytes[] memory sigs = signChange(c, first(keys, 2), newSet, 5, 0);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotEnoughSignatures.selector, uint256(2), uint256(3)));
        c.changeValidators(newSet, 5, sigs);
    }

    function test_Revert_ChangeValidators_SignedByNewSet() public {
        (, address[] memory oldSet) = makeSet(4, 4);
        (uint256[] memory newKeys, address[] memory newSet) = makeSet(7, 7);
        CdrCheckpoint c = deploy(oldSet, 3);
        bytes[] memory sigs = signChange(c, first(newKeys, 5), newSet, 5, 0);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.NotAValidator.selector, newSet[0]));
        c.changeValidators(newSet, 5, sigs);
    }

    function test_Revert_ChangeValidators_WrongNonce() public {
        (uint256[] memory keys, address[] memory oldSet) = makeSet(4, 4);
        (, address[] memory newSet) = makeSet(7, 7);
        CdrCheckpoint c = deploy(oldSet, 3);
        bytes[] memory sigs = signChange(c, first(keys, 3), newSet, 5, 1);
        expectNotAValidator(c.validatorSetChangeDigest(newSet, 5, 0), sigs);
        c.changeValidators(newSet, 5, sigs);
        assertEq(c.nonce(), 0, "nonce unchanged");
    }

    function test_Revert_ChangeValidators_Replay() public {
        // 4 -> 5 (a superset, so the old signers are still validators), then replay the change.
        (uint256[] memory keys, address[] memory set5) = makeSet(5, 5);
        address[] memory set4 = new address[](4);
        for (uint256 i; i < 4; ++i) {
            set4[i] = set5[i];
        }
        CdrCheckpoint c = deploy(set4, 3);
        bytes[] memory sigs = signChange(c, first(keys, 4), set5, 4, 0);
        c.changeValidators(set5, 4, sigs);
        assertEq(c.nonce(), 1, "nonce");
        // Signed over nonce 0: under nonce 1 the signatures recover to unrelated addresses.
        expectNotAValidator(c.validatorSetChangeDigest(set5, 4, 1), sigs);
        c.changeValidators(set5, 4, sigs);
        assertEq(c.nonce(), 1, "nonce after replay");
    }

    function test_Revert_ChangeValidators_InvalidNewSet() public {
        (uint256[] memory keys, address[] memory oldSet) = makeSet(4, 4);
        CdrCheckpoint c = deploy(oldSet, 3);
        // Quorum-signed but the new set is unsorted / its threshold too low.
        address[] memory unsorted = new address[](4);
        unsorted[0] = oldSet[1];
        unsorted[1] = oldSet[0];
        unsorted[2] = oldSet[2];
        unsorted[3] = oldSet[3];
        bytes[] memory sigs = signChange(c, first(keys, 3), unsorted, 3, 0);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.InvalidValidatorSet.selector, uint256(1)));
        c.changeValidators(unsorted, 3, sigs);

        sigs = signChange(c, first(keys, 3), oldSet, 2, 0);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.InvalidThreshold.selector, uint256(2), uint256(4)));
        c.changeValidators(oldSet, 2, sigs);

        address[] memory empty = new address[](0);
        sigs = signChange(c, first(keys, 3), empty, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(CdrCheckpoint.InvalidThreshold.selector, uint256(0), uint256(0)));
        c.changeValidators(empty, 0, sigs);
        assertEq(c.nonce(), 0, "nonce unchanged");
        assertEq(c.threshold(), 3, "threshold unchanged");
    }

    // ------------------------------------------------------------------ constructor

    function set3(uint160 a, uint160 b, uint160 c) internal pure returns (address[] memory out) {
        out = new address[](3);
        out[0] = address(a);
        out[1] = address(b);
        out[2] = address(c);
    }

    function expectDeployRevert(address[] memory set, uint256 threshold, bytes memory err) internal {
        vm.expectRevert(err);
        deployer.deploy(GENESIS, set, threshold);
    }

    function test_Constructor_RejectsBadSets() public {
        bytes4 invalidSet = CdrCheckpoint.InvalidValidatorSet.selector;
        expectDeployRevert(new address[](0), 0, abi.encodeWithSelector(CdrCheckpoint.InvalidThreshold.selector, 0, 0));
        expectDeployRevert(new address[](0), 1, abi.encodeWithSelector(CdrCheckpoint.InvalidThreshold.selector, 1, 0));
        expectDeployRevert(set3(0, 2, 3), 3, abi.encodeWithSelector(invalidSet, 0));
        expectDeployRevert(set3(1, 3, 2), 3, abi.encodeWithSelector(invalidSet, 2));
        expectDeployRevert(set3(2, 1, 3), 3, abi.encodeWithSelector(invalidSet, 1));
        expectDeployRevert(set3(1, 2, 2), 3, abi.encodeWithSelector(invalidSet, 2));
        expectDeployRevert(set3(1, 1, 2), 3, abi.encodeWithSelector(invalidSet, 1));
    }

    function test_Constructor_RejectsBadThresholds() public {
        bytes4 invalid = CdrCheckpoint.InvalidThreshold.selector;
        (, address[] memory four) = makeSet(4, 4);
        (, address[] memory six) = makeSet(6, 6);
        (, address[] memory seven) = makeSet(7, 7);
        expectDeployRevert(set3(1, 2, 3), 2, abi.encodeWithSelector(invalid, 2, 3)); // exactly 2/3
        expectDeployRevert(set3(1, 2, 3), 4, abi.encodeWithSelector(invalid, 4, 3)); // above n
        expectDeployRevert(four, 2, abi.encodeWithSelector(invalid, 2, 4));
        expectDeployRevert(four, 5, abi.encodeWithSelector(invalid, 5, 4));
        expectDeployRevert(six, 4, abi.encodeWithSelector(invalid, 4, 6)); // exactly 2/3
        expectDeployRevert(seven, 4, abi.encodeWithSelector(invalid, 4, 7));
        expectDeployRevert(four, type(uint256).max, abi.encodeWithSelector(invalid, type(uint256).max, 4));
        expectDeployRevert(set3(1, 2, 3), 0, abi.encodeWithSelector(invalid, 0, 3));
    }

    function test_Constructor_AcceptsMinimalThresholds() public {
        (, address[] memory four) = makeSet(4, 4);
        (, address[] memory six) = makeSet(6, 6);
        (, address[] memory seven) = makeSet(7, 7);
        address[] memory one = new address[](1);
        one[0] = address(1);
        assertEq(deploy(one, 1).threshold(), 1, "1 of 1");
        assertEq(deploy(set3(1, 2, 3), 3).threshold(), 3, "3 of 3");
        assertEq(deploy(four, 3).threshold(), 3, "3 of 4");
        assertEq(deploy(four, 4).threshold(), 4, "4 of 4");
        assertEq(deploy(six, 5).threshold(), 5, "5 of 6");
        assertEq(deploy(seven, 5).threshold(), 5, "5 of 7");
    }

    // ------------------------------------------------------------------ digests

    function test_Digests_MatchIndependentEip712() public {
        (, address[] memory set) = makeSet(4, 4);
        vm.chainId(31);
        CdrCheckpoint c = deploy(set, 3);
        CdrCheckpoint.Checkpoint memory cp = checkpoint(600);
        assertEq(c.checkpointDigest(cp), expectedCheckpointDigest(31, address(c), cp), "checkpointDigest");
        assertEq(c.validatorSetChangeDigest(set, 3, 7), expectedChangeDigest(31, address(c), set, 3, 7), "changeDigest");
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(bytes(DOMAIN_TYPE)), keccak256("CdrCheckpoint"), keccak256("1"), uint256(31), address(c)
            )
        );
        assertEq(c.domainSeparator(), domain, "domainSeparator");
        assertEq(c.CHECKPOINT_TYPEHASH(), keccak256(bytes(CHECKPOINT_TYPE)), "CHECKPOINT_TYPEHASH");
        assertEq(
            c.VALIDATOR_SET_CHANGE_TYPEHASH(),
            keccak256(bytes(VALIDATOR_SET_CHANGE_TYPE)),
            "VALIDATOR_SET_CHANGE_TYPEHASH"
        );
        assertEq(c.DOMAIN_TYPEHASH(), keccak256(bytes(DOMAIN_TYPE)), "DOMAIN_TYPEHASH");
    }

    function testFuzz_CheckpointDigest(
        bytes32 genesis,
        uint64 height,
        bytes32 blockHash,
        bytes32 stateRoot,
        bytes32 cdrLogRoot,
        uint64 cdrLogSize,
        uint64 chainId
    ) public {
        (, address[] memory set) = makeSet(4, 4);
        vm.chainId(chainId);
        CdrCheckpoint c = deploy(set, 3);
        CdrCheckpoint.Checkpoint memory cp =
            CdrCheckpoint.Checkpoint(genesis, height, blockHash, stateRoot, cdrLogRoot, cdrLogSize);
        assertEq(c.checkpointDigest(cp), expectedCheckpointDigest(chainId, address(c), cp), "checkpointDigest");
    }

    /// @notice The README's test vector: the Rust validators must produce the same digest.
    function test_TestVector() public {
        CdrCheckpoint.Checkpoint memory cp = CdrCheckpoint.Checkpoint({
            genesisHash: 0x1111111111111111111111111111111111111111111111111111111111111111,
            height: 600,
            blockHash: 0x2222222222222222222222222222222222222222222222222222222222222222,
            stateRoot: 0x3333333333333333333333333333333333333333333333333333333333333333,
            cdrLogRoot: 0x4444444444444444444444444444444444444444444444444444444444444444,
            cdrLogSize: 12345
        });
        bytes32 independent = expectedCheckpointDigest(VECTOR_CHAIN_ID, VECTOR_CONTRACT, cp);

        // The contract's own digest, with its code placed at the vector's address on chain 33.
        (, address[] memory set) = makeSet(4, 4);
        vm.chainId(VECTOR_CHAIN_ID);
        CdrCheckpoint c = deploy(set, 3);
        vm.etch(VECTOR_CONTRACT, address(c).code);
        bytes32 digest = CdrCheckpoint(VECTOR_CONTRACT).checkpointDigest(cp);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(1, digest);

        emit log_named_bytes32("domainSeparator", CdrCheckpoint(VECTOR_CONTRACT).domainSeparator());
        emit log_named_bytes32("digest", digest);
        emit log_named_bytes32("r", r);
        emit log_named_bytes32("s", s);
        emit log_named_uint("v", v);
        emit log_named_address("signer (key 0x01)", vm.addr(1));

        assertEq(digest, independent, "contract digest vs independent digest");
        assertEq(digest, VECTOR_DIGEST, "digest vs README vector");
        assertEq(CdrCheckpoint(VECTOR_CONTRACT).domainSeparator(), VECTOR_DOMAIN_SEPARATOR, "domain separator");
        assertEq(r, VECTOR_R, "r");
        assertEq(s, VECTOR_S, "s");
        assertEq(v, VECTOR_V, "v");
        assertTrue(ecrecover(digest, v, r, s) == 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf, "signer");
    }

    /// @notice The README's second vector: a ValidatorSetChange to the addresses of keys 1..4.
    function test_TestVector_ValidatorSetChange() public {
        address[] memory set = new address[](4);
        set[0] = 0x1efF47bc3a10a45D4B230B5d10E37751FE6AA718; // key 0x04
        set[1] = 0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF; // key 0x02
        set[2] = 0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69; // key 0x03
        set[3] = 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf; // key 0x01
        bytes32 independent = expectedChangeDigest(VECTOR_CHAIN_ID, VECTOR_CONTRACT, set, 3, 0);

        (, address[] memory initial) = makeSet(4, 4);
        vm.chainId(VECTOR_CHAIN_ID);
        CdrCheckpoint c = deploy(initial, 3);
        vm.etch(VECTOR_CONTRACT, address(c).code);
        bytes32 digest = CdrCheckpoint(VECTOR_CONTRACT).validatorSetChangeDigest(set, 3, 0);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(1, digest);

        emit log_named_bytes32("digest", digest);
        emit log_named_bytes32("r", r);
        emit log_named_bytes32("s", s);
        emit log_named_uint("v", v);

        assertEq(digest, independent, "contract digest vs independent digest");
        assertEq(digest, VECTOR_CHANGE_DIGEST, "digest vs README vector");
        assertEq(keccak256(abi.encodePacked(r, s, v)), keccak256(VECTOR_CHANGE_SIG), "signature vs README vector");
        for (uint256 k = 1; k <= 4; ++k) {
            assertTrue(vm.addr(k) == set[[3, 1, 2, 0][k - 1]], "vector addresses");
        }
    }

    // ------------------------------------------------------------------ gas (scripts/contracts.sh gas)

    function gasOfSubmit(uint256 n, uint256 threshold) internal returns (uint256 used) {
        (uint256[] memory keys, address[] memory set) = makeSet(n, n);
        CdrCheckpoint c = deploy(set, threshold);
        CdrCheckpoint.Checkpoint memory a = checkpoint(600);
        CdrCheckpoint.Checkpoint memory b = checkpoint(700);
        bytes[] memory sigsA = signAll(first(keys, threshold), c.checkpointDigest(a));
        bytes[] memory sigsB = signAll(first(keys, threshold), c.checkpointDigest(b));
        uint256 before = gasleft();
        c.submitCheckpoint(a, sigsA);
        emit log_named_uint("first submitCheckpoint, execution gas (in-test, approximate)", before - gasleft());
        before = gasleft();
        c.submitCheckpoint(b, sigsB);
        used = before - gasleft();
        emit log_named_uint("later submitCheckpoint, execution gas (in-test, warm slots)", used);
    }

    function test_Gas_Submit_4Validators_3Signatures() public {
        gasOfSubmit(4, 3);
    }

    function test_Gas_Submit_7Validators_5Signatures() public {
        gasOfSubmit(7, 5);
    }
}
