//! RocksDB options, chosen per column family. Each choice says why.

use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, DBRecoveryMode, Env, Options, WriteOptions};

use crate::layout;

const MIB: usize = 1024 * 1024;

/// Most SST files kept open at once (see [`db_options`]).
const MAX_OPEN_FILES: i32 = 512;
/// Flushes and compactions that run at once (see [`db_options`]).
const MAX_BACKGROUND_JOBS: i32 = 2;
/// Memtable memory of all column families together.
const DB_WRITE_BUFFER_BYTES: usize = 256 * MIB;
/// WAL size past which RocksDB flushes the column families that pin its oldest file.
const MAX_TOTAL_WAL_BYTES: u64 = 256 * 1024 * 1024;
/// Step of the background write-back of new SST files.
const BYTES_PER_SYNC: u64 = MIB as u64;
/// RocksDB info logs kept in the database directory.
const INFO_LOG_FILES_KEPT: usize = 4;
/// Bits per key of the SST bloom filters (about 1 % false positives).
const BLOOM_BITS_PER_KEY: f64 = 10.0;
/// Block size of `bodies`, read whole one block at a time.
const BODIES_BLOCK_BYTES: usize = 64 * 1024;
/// The share of the `ingest_keys` memtable given to its bloom filter (see [`column_options`]).
const INGEST_KEYS_MEMTABLE_BLOOM_RATIO: f64 = 0.02;
/// L0 files that start a merge into the base level, for the columns written with every CDR.
const L0_COMPACTION_TRIGGER_FILES: i32 = 8;
/// Levels RocksDB compresses per level (the default number of levels).
const COMPRESSION_LEVELS: usize = 7;
/// The block cache shared by all column families.
const BLOCK_CACHE_BYTES: usize = 64 * MIB;

/// The queue's memtable, the largest of any column family (see [`tune_column`]).
const QUEUE_WRITE_BUFFER_BYTES: usize = 128 * MIB;
// The database-wide budget bounds the queue's memtable too: it must hold at least one whole.
const _: () = assert!(QUEUE_WRITE_BUFFER_BYTES <= DB_WRITE_BUFFER_BYTES);

/// Database-wide options.
pub(crate) fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    // A database created by an older build of the same schema, or one whose creation was
    // interrupted, still gets every column family this build needs.
    options.create_missing_column_families(true);
    // Bounded so that a node with a large history stays well under the usual `ulimit -n` of 1024
    // (RocksDB's default, -1, keeps every SST open). Table readers beyond this are reopened on
    // demand; 512 SSTs of 64 MiB cover tens of GiB before any reopening happens.
    options.set_max_open_files(MAX_OPEN_FILES);
    // Validators are small machines (2 cores in CI): one flush and one compaction at a time.
    options.set_max_background_jobs(MAX_BACKGROUND_JOBS);
    // Thirteen column families each with its own memtables: cap their total memory.
    options.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
    // The small, rarely written column families (meta, wal, queue) would otherwise pin old WAL
    // files forever; past this size RocksDB flushes them so the WAL can be recycled.
    options.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    // Spread background write-back instead of one large fsync at the end of each SST.
    options.set_bytes_per_sync(BYTES_PER_SYNC);
    // A record of the write-ahead log that is damaged anywhere but at its very end is an error at
    // open, not the end of recovery: every acknowledged write was synced, so a damaged record
    // before the tail is data RocksDB would otherwise drop silently (its default, point-in-time
    // recovery, stops replaying there). A torn last record is a write that a crash interrupted
    // before it was acknowledged, and is dropped as before.
    options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
    // Keep a few info logs for diagnosis, not an unbounded directory of them.
    options.set_keep_log_file_num(INFO_LOG_FILES_KEPT);
    // Compactions run at the lowest CPU priority (nice 19): they keep up in the time the
    // foreground leaves, and under load they no longer take a core from the ingest writer, which
    // all acknowledgements wait for (a serial stage, busy nearly all the time at the dev chain's
    // ceiling). Flushes keep normal priority: writes stop when memtables cannot be flushed.
    // Alternating dev runs: 176k -> 186k CDRs/s mean, higher in each of five pairs.
    if let Ok(mut env) = Env::new() {
        env.lower_thread_pool_cpu_priority();
        options.set_env(&env);
    }
    options
}

/// Options of one column family. `cache` is the block cache shared by all of them.
pub(crate) fn column_options(column: &str, cache: &Cache) -> Options {
    let mut options = Options::default();
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Index and filter blocks compete for the same cache (bounded memory) but L0's stay pinned,
    // as they are consulted by every read.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    tune_column(column, &mut options, &mut table);
    options.set_block_based_table_factory(&table);
    tune_compaction(column, &mut options);
    options
}

/// Compression, memtable size and table options of `column`, by what it holds and how it is read.
fn tune_column(column: &str, options: &mut Options, table: &mut BlockBasedOptions) {
    match column {
        // CDRs and bodies are most of the bytes: repetitive field values (operator ids, system
        // ids, dispositions) compress 2-3x with LZ4, which costs little CPU on the commit path.
        // Large memtables: a block of 10,000 CDRs writes several MiB here.
        layout::CDRS | layout::BODIES => {
            options.set_compression_type(DBCompressionType::Lz4);
            options.set_write_buffer_size(64 * MIB);
            options.set_max_write_buffer_number(3);
            if column == layout::CDRS {
                // Point lookups by (recorder, sequence) from RPC and the partner index.
                table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            } else {
                // Bodies are read whole, one block at a time: bigger blocks compress better.
                table.set_block_size(BODIES_BLOCK_BYTES);
            }
        }
        // The secondary indexes have long, shared key prefixes (call ids, partner pairs, parties): LZ4
        // plus prefix compression of keys keep them small. They are read by range scans, so no
        // whole-key bloom filter.
        layout::CALL_IDS | layout::PARTNERS | layout::PARTIES => {
            options.set_compression_type(DBCompressionType::Lz4);
            options.set_write_buffer_size(32 * MIB);
        }
        // Hashes do not compress; skip the CPU. Point lookups (proofs, hash → height): bloom.
        layout::LOG_NODES | layout::HASH_INDEX => {
            options.set_compression_type(DBCompressionType::None);
            options.set_write_buffer_size(32 * MIB);
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        }
        // One small entry per block, mostly hashes and signatures.
        layout::HEADERS | layout::CERTIFICATES => {
            options.set_compression_type(DBCompressionType::None);
            options.set_write_buffer_size(8 * MIB);
        }
        // Ingest keys are random digests looked up once per submitted CDR, nearly always
        // absent: a bloom filter answers "absent" without touching the files.
        layout::INGEST_KEYS => {
            options.set_compression_type(DBCompressionType::None);
            options.set_write_buffer_size(16 * MIB);
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            // The memtable too: without a filter each lookup walks its skip list (a profile of
            // the dev node under load showed ~7 % of its CPU there); with one, an absent key is
            // answered from a bit array. 2 % of the memtable (320 KiB, ~10 bits for each of the
            // ~270,000 keys a 16 MiB memtable holds, ~1 % false positives): at 10 % (48 bits per
            // key) its random inserts missed the CPU caches, 1.5 % of the dev node's CPU.
            options.set_memtable_whole_key_filtering(true);
            options.set_memtable_prefix_bloom_ratio(INGEST_KEYS_MEMTABLE_BLOOM_RATIO);
            // Filters stay in the table readers, not the shared block cache. Cached, the full
            // filter block of an SST (~1.2 MiB per million keys) was evicted by CDR data and read
            // back from disk with its checksum on nearly every lookup: 76 % of the dev node's CPU
            // once a million keys were stored, and ingest fell from 44k to 8k CDRs/s. Resident,
            // filters cost ~10 bits per ingested record (~125 MiB per 100 million records).
            table.set_cache_index_and_filter_blocks(false);
        }
        // The queue holds encoded CDRs waiting for a block: compressible, short-lived. Each
        // entry lives from its acknowledgement until its block commits (about a second under
        // load), and a flush drops entries a range tombstone already covers. A 16 MiB
        // memtable filled in 0.4 s at the dev chain's 150k CDRs/s, so nearly every entry was
        // flushed (compressed) to L0 and compacted away later. At 128 MiB most are deleted
        // before their flush: dev 146k → 161k CDRs/s. The databases' total memtable budget
        // (`set_db_write_buffer_size`) still bounds the memory.
        layout::QUEUE => {
            options.set_compression_type(DBCompressionType::Lz4);
            options.set_write_buffer_size(QUEUE_WRITE_BUFFER_BYTES);
        }
        // The state tree's nodes: hashes read by point lookups along a few paths per block.
        layout::STATE_TREE => {
            options.set_compression_type(DBCompressionType::None);
            options.set_write_buffer_size(4 * MIB);
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        }
        // meta, state, wal and unknown column families: small.
        _ => {
            options.set_compression_type(DBCompressionType::None);
            options.set_write_buffer_size(4 * MIB);
        }
    }
}

/// How the columns written with every CDR are compacted.
fn tune_compaction(column: &str, options: &mut Options) {
    if matches!(
        column,
        layout::CDRS
            | layout::BODIES
            | layout::CALL_IDS
            | layout::PARTNERS
            | layout::PARTIES
            | layout::LOG_NODES
            | layout::INGEST_KEYS
    ) {
        // The columns written with every CDR. Compaction is a validator's largest background
        // cost, and most of it merges L0 into the base level: call ids and ingest keys are
        // random, so each L0 file overlaps all of that level, which is rewritten whole whenever
        // RocksDB's default of four L0 files have piled up. Eight files per merge halve those
        // rewrites, at the price of up to eight more L0 bloom-filter checks per read. Measured in
        // the four-validator benchmark: ~45k → ~48k CDRs/s (docs/benchmarks.md, sixth round).
        options.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER_FILES);
    }
    if matches!(column, layout::CALL_IDS | layout::PARTNERS | layout::PARTIES) {
        // Flushes write L0 uncompressed; the merge into the base level compresses (LZ4) as
        // before. Each L0 file lives only until that merge, so compressing it at flush was a
        // second compression of every byte (2.3 % of the dev node's CPU), and the merge then
        // decompressed it again. L0 takes up to ~2.5x the disk for those few files.
        //
        // Not for `cdrs`: its keys (recorder, sequence) grow with each block, so a recorder's
        // new L0 files lie above everything stored, and RocksDB moves such files to the base
        // level without rewriting them, but only when no per-level compression is set. With
        // one recorder (a dev chain) that removed the whole of its compaction: the compaction
        // thread's CPU fell from 19 % to 6 % of a core (docs/benchmarks.md, tenth round).
        let mut per_level = [DBCompressionType::Lz4; COMPRESSION_LEVELS];
        per_level[0] = DBCompressionType::None;
        options.set_compression_per_level(&per_level);
    }
}

/// The shared block cache: 64 MiB, enough for the small state, the recent log nodes and index
/// blocks; CDR reads beyond it go to the OS page cache.
pub(crate) fn block_cache() -> Cache {
    Cache::new_lru_cache(BLOCK_CACHE_BYTES)
}

/// Writes that must survive power loss once the call returns: block commits (the chain must not
/// forget a block it voted on or served), ingest-queue writes (a switch's CDR acknowledged as
/// queued must not be lost), the consensus WAL (double-signing protection) and metadata. The
/// fsync per call is why callers batch: one per block, one per `enqueue` call.
pub(crate) fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}
