// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title CdrCheckpoint
/// @notice Stores checkpoints of the cdrchain state (block hash, state root and CDR log root at a
///         height) on RSK, each signed by more than two thirds of the cdrchain validator set.
/// @dev Signatures are EIP-712 over the domain
///      `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`
///      with name "CdrCheckpoint", version "1", `block.chainid` and `address(this)`. The Rust
///      validators sign the very same digests; `checkpointDigest` and `validatorSetChangeDigest`
///      let off-chain code check its own computation. Anyone may submit: the relayer only pays gas.
contract CdrCheckpoint {
    /// @notice A cdrchain checkpoint: the chain's identity, a finalized height and its roots.
    struct Checkpoint {
        bytes32 genesisHash;
        uint64 height;
        bytes32 blockHash;
        bytes32 stateRoot;
        bytes32 cdrLogRoot;
        uint64 cdrLogSize;
    }

    /// @dev What is stored per height (genesisHash is the contract's, height is the key; a
    ///      non-zero `height` marks the slot as used).
    struct Stored {
        bytes32 blockHash;
        bytes32 stateRoot;
        bytes32 cdrLogRoot;
        uint64 cdrLogSize;
        uint64 height;
    }

    // ---------------------------------------------------------------- EIP-712 type hashes

    bytes32 public constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant CHECKPOINT_TYPEHASH = keccak256(
        "Checkpoint(bytes32 genesisHash,uint64 height,bytes32 blockHash,bytes32 stateRoot,bytes32 cdrLogRoot,uint64 cdrLogSize)"
    );
    bytes32 public constant VALIDATOR_SET_CHANGE_TYPEHASH =
        keccak256("ValidatorSetChange(address[] validators,uint256 threshold,uint256 nonce)");

    bytes32 private constant NAME_HASH = keccak256("CdrCheckpoint");
    bytes32 private constant VERSION_HASH = keccak256("1");

    /// @dev secp256k1n / 2: signatures with a larger s are rejected (EIP-2 malleability).
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ---------------------------------------------------------------- state

    /// @notice The genesis hash of the cdrchain this contract checkpoints.
    bytes32 public immutable genesisHash;

    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;
    bytes32 private immutable _cachedDomainSeparator;

    // One slot, read and written once per submitCheckpoint.
    uint64 private _latestHeight;
    uint64 private _nonce;
    uint128 private _threshold;

    address[] private _validators;

    /// @notice Whether `account` is in the current validator set.
    mapping(address account => bool) public isValidator;

    mapping(uint64 height => Stored) private _checkpoints;

    // ---------------------------------------------------------------- events

    /// @notice A checkpoint signed by a quorum was stored at `height`.
    /// @param submitter The account that sent the transaction (paid the gas).
    event CheckpointStored(
        uint64 indexed height,
        bytes32 blockHash,
        bytes32 stateRoot,
        bytes32 cdrLogRoot,
        uint64 cdrLogSize,
        address submitter
    );

    /// @notice The validator set was replaced.
    /// @param nonce The nonce the change was signed over; `nonce()` is now `nonce + 1`.
    event ValidatorsChanged(uint256 nonce, address[] validators, uint256 threshold);

    // ---------------------------------------------------------------- errors

    /// @notice Fewer signatures than the threshold.
    error NotEnoughSignatures(uint256 got, uint256 needed);
    /// @notice Signature `index` is not 65 bytes, has s > secp256k1n/2, v not 27/28, or
    ///         does not recover to an address.
    error BadSignature(uint256 index);
    /// @notice The signer of signature `index` is not strictly greater than the previous
    ///         signer (unsorted or duplicate).
    error SignersNotAscending(uint256 index);
    /// @notice `signer` signed but is not in the current validator set.
    error NotAValidator(address signer);
    /// @notice The checkpoint's height is not above the latest stored one.
    error HeightNotIncreasing(uint64 height, uint64 latest);
    /// @notice The checkpoint is for another chain (genesis hash `got`).
    error WrongGenesis(bytes32 got);
    /// @notice Validator `index` of a proposed set is zero or not strictly greater than the
    ///         one before it (the set must be strictly ascending, hence without duplicates).
    error InvalidValidatorSet(uint256 index);
    /// @notice A threshold that is not more than two thirds of the set, or exceeds the set
    ///         size (an empty set always fails here: no threshold fits).
    error InvalidThreshold(uint256 threshold, uint256 validators);
    /// @notice No checkpoint is stored at `height`.
    error UnknownCheckpoint(uint64 height);

    // ---------------------------------------------------------------- constructor

    /// @param genesisHash_ Genesis hash of the cdrchain to checkpoint.
    /// @param validators_ Initial validators, strictly ascending, non-zero, non-empty.
    /// @param threshold_ Signatures needed: `threshold_ * 3 > n * 2` and `threshold_ <= n`.
    constructor(bytes32 genesisHash_, address[] memory validators_, uint256 threshold_) {
        genesisHash = genesisHash_;
        _cachedChainId = block.chainid;
        _cachedThis = address(this);
        _cachedDomainSeparator = _buildDomainSeparator();
        _setValidators(validators_, threshold_);
    }

    // ---------------------------------------------------------------- mutations

    /// @notice Stores `checkpoint` if a quorum of the current validators signed it.
    /// @param checkpoint The checkpoint; its height must exceed `latestHeight()`.
    /// @param signatures 65-byte (r ‖ s ‖ v) signatures over `checkpointDigest(checkpoint)`,
    ///        ordered by strictly ascending signer address; at least `threshold()` of them.
    function submitCheckpoint(Checkpoint calldata checkpoint, bytes[] calldata signatures) external {
        if (checkpoint.genesisHash != genesisHash) revert WrongGenesis(checkpoint.genesisHash);
        uint64 height = checkpoint.height;
        uint64 current = _latestHeight;
        if (height <= current) revert HeightNotIncreasing(height, current);

        _verifyQuorum(checkpointDigest(checkpoint), signatures);

        _latestHeight = height;
        _checkpoints[height] = Stored({
            blockHash: checkpoint.blockHash,
            stateRoot: checkpoint.stateRoot,
            cdrLogRoot: checkpoint.cdrLogRoot,
            cdrLogSize: checkpoint.cdrLogSize,
            height: height
        });
        emit CheckpointStored(
            height, checkpoint.blockHash, checkpoint.stateRoot, checkpoint.cdrLogRoot, checkpoint.cdrLogSize, msg.sender
        );
    }

    /// @notice Replaces the validator set, authorized by a quorum of the current set.
    /// @param validators_ The new set, strictly ascending, non-zero, non-empty.
    /// @param threshold_ The new threshold (more than two thirds of the new set).
    /// @param signatures Signatures of current validators over
    ///        `validatorSetChangeDigest(validators_, threshold_, nonce())`, ascending by signer.
    function changeValidators(address[] calldata validators_, uint256 threshold_, bytes[] calldata signatures)
        external
    {
        uint256 usedNonce = _nonce;
        _verifyQuorum(validatorSetChangeDigest(validators_, threshold_, usedNonce), signatures);

        address[] storage old = _validators;
        uint256 n = old.length;
        for (uint256 i; i < n; ++i) {
            delete isValidator[old[i]];
        }
        _setValidators(validators_, threshold_);
        // A uint64 nonce cannot overflow: each increment costs a quorum-signed transaction.
        // forge-lint: disable-next-line(unsafe-typecast)
        _nonce = uint64(usedNonce + 1);
        emit ValidatorsChanged(usedNonce, validators_, threshold_);
    }

    // ---------------------------------------------------------------- views

    /// @notice Height of the latest stored checkpoint, 0 when none is stored yet.
    function latestHeight() external view returns (uint64) {
        return _latestHeight;
    }

    /// @notice The latest stored checkpoint.
    /// @dev Reverts with `UnknownCheckpoint(0)` when none is stored yet (check `latestHeight()`).
    function latest() external view returns (Checkpoint memory) {
        return checkpointAt(_latestHeight);
    }

    /// @notice The checkpoint stored at `height`; reverts with `UnknownCheckpoint(height)` if none.
    function checkpointAt(uint64 height) public view returns (Checkpoint memory) {
        Stored storage s = _checkpoints[height];
        if (s.height == 0) revert UnknownCheckpoint(height);
        return Checkpoint({
            genesisHash: genesisHash,
            height: height,
            blockHash: s.blockHash,
            stateRoot: s.stateRoot,
            cdrLogRoot: s.cdrLogRoot,
            cdrLogSize: s.cdrLogSize
        });
    }

    /// @notice The current validator set, strictly ascending.
    function validators() external view returns (address[] memory) {
        return _validators;
    }

    /// @notice Signatures needed for a checkpoint or a validator-set change.
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @notice The nonce the next validator-set change must be signed over (starts at 0).
    function nonce() external view returns (uint256) {
        return _nonce;
    }

    /// @notice The EIP-712 domain separator for the current chain id and this contract.
    function domainSeparator() public view returns (bytes32) {
        if (block.chainid == _cachedChainId && address(this) == _cachedThis) return _cachedDomainSeparator;
        return _buildDomainSeparator();
    }

    /// @notice The EIP-712 digest validators sign for `checkpoint`.
    function checkpointDigest(Checkpoint calldata checkpoint) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                CHECKPOINT_TYPEHASH,
                checkpoint.genesisHash,
                checkpoint.height,
                checkpoint.blockHash,
                checkpoint.stateRoot,
                checkpoint.cdrLogRoot,
                checkpoint.cdrLogSize
            )
        );
        return _typedDataDigest(structHash);
    }

    /// @notice The EIP-712 digest validators sign to replace the set by `validators_` with
    ///         `threshold_`, at nonce `nonce_`.
    function validatorSetChangeDigest(address[] calldata validators_, uint256 threshold_, uint256 nonce_)
        public
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(VALIDATOR_SET_CHANGE_TYPEHASH, keccak256(abi.encodePacked(validators_)), threshold_, nonce_)
        );
        return _typedDataDigest(structHash);
    }

    // ---------------------------------------------------------------- internals

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    function _typedDataDigest(bytes32 structHash) private view returns (bytes32 digest) {
        bytes32 separator = domainSeparator();
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, hex"1901")
            mstore(add(ptr, 0x02), separator)
            mstore(add(ptr, 0x22), structHash)
            digest := keccak256(ptr, 0x42)
        }
    }

    /// @dev Validates and stores a set; the caller has cleared the previous members.
    function _setValidators(address[] memory validators_, uint256 threshold_) private {
        uint256 n = validators_.length;
        if (threshold_ > n || threshold_ * 3 <= n * 2) revert InvalidThreshold(threshold_, n);
        address prev = address(0);
        for (uint256 i; i < n; ++i) {
            address v = validators_[i];
            if (v <= prev) revert InvalidValidatorSet(i);
            isValidator[v] = true;
            prev = v;
        }
        _validators = validators_;
        // threshold_ <= validators_.length (checked above), far below 2**128.
        // forge-lint: disable-next-line(unsafe-typecast)
        _threshold = uint128(threshold_);
    }

    /// @dev Reverts unless `signatures` are at least `threshold` valid signatures over `digest`
    ///      by distinct current validators in strictly ascending address order.
    function _verifyQuorum(bytes32 digest, bytes[] calldata signatures) private view {
        uint256 needed = _threshold;
        uint256 count = signatures.length;
        if (count < needed) revert NotEnoughSignatures(count, needed);
        address prev = address(0);
        for (uint256 i; i < count; ++i) {
            address signer = _recover(digest, signatures[i], i);
            if (signer <= prev) revert SignersNotAscending(i);
            if (!isValidator[signer]) revert NotAValidator(signer);
            prev = signer;
        }
    }

    /// @dev ecrecover of a 65-byte r ‖ s ‖ v signature, rejecting malleable or invalid ones.
    function _recover(bytes32 digest, bytes calldata signature, uint256 index) private pure returns (address signer) {
        if (signature.length != 65) revert BadSignature(index);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 0x20))
            v := byte(0, calldataload(add(signature.offset, 0x40)))
        }
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) revert BadSignature(index);
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert BadSignature(index);
    }
}
