// eventlog::Log: an append-only, group-committed, durable log of opaque records (behaviour events,
// decision 0006). A log is a directory of segment files; every record gets a dense 64-bit sequence
// number starting at 1 and a locator (segment, offset) to read it back. README.md describes the
// on-disk format and the recovery rules.
//
// Durability. Append returns only after its records are written and fdatasync'ed (Options::sync).
// Appends from many threads are group-committed: one flusher thread takes everything queued since
// its last write, writes it with one pwritev, calls fdatasync once, and wakes those callers; the
// callers that queued meanwhile go into the next write. A fsync costs ~0.3 ms on the reference
// machine whatever it carries, so under load one fsync acknowledges thousands of records. A caller
// whose records are durable is woken right away, not after the rest of the flusher's work (such
// as rolling to a new segment for later callers).
//
// Failure. If a write or fdatasync fails, the log refuses every later Append (STORE_UNAVAILABLE):
// on Linux a failed fsync may have dropped dirty pages and reports the error once, so retrying
// could acknowledge data that is not on disk. Reopening the log (a restart) recovers from the
// files as they are. Records whose Append failed, or whose caller died before the answer, may
// still be in the log after a restart (written, but not known to be durable): a caller that
// retries must deduplicate, as the events service does by event_id.
//
// Recovery (Open). Every record of every segment is read and its checksum verified. A bad record
// in the last segment with no valid record after it is the torn tail of an append that never
// completed (nothing in it was acknowledged): it is truncated and reported in recovery(). A bad
// record anywhere else, or one followed by valid records (acknowledged data was damaged), is an
// INTERNAL error naming the file and offset, and the log does not open. Options::salvage
// truncates the last segment at its first bad record anyway, for an operator who accepts the loss.
//
// Thread-safety: every method may be called from any thread concurrently, except that nothing may
// run concurrently with the destructor. Read and Scan run concurrently with appends and see
// records once they are durable.
// Ownership: the log owns its files (and an exclusive flock on <dir>/LOCK, so a second Log, in
// this process or another, cannot open the same directory) and its flusher thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace siyu::eventlog {

// Where a record is: the segment's ordinal (1, 2, ... in log order, kept in the segment's header)
// in the high 24 bits and the record's byte offset in the segment in the low 40. Stable for the
// life of the record; 0 is never a valid locator.
using Locator = uint64_t;
inline constexpr int kLocatorOffsetBits = 40;
inline constexpr uint64_t kMaxSegmentOrdinal = (uint64_t{1} << (64 - kLocatorOffsetBits)) - 1;
constexpr Locator MakeLocator(uint32_t segment, uint64_t offset) {
  return (uint64_t{segment} << kLocatorOffsetBits) | offset;
}
constexpr uint32_t LocatorSegment(Locator l) {
  return static_cast<uint32_t>(l >> kLocatorOffsetBits);
}
constexpr uint64_t LocatorOffset(Locator l) {
  return l & ((uint64_t{1} << kLocatorOffsetBits) - 1);
}

struct Options {
  // A segment is closed and the next one started when a batch would take it past this size (a
  // batch never spans segments; a batch larger than this gets a segment of its own).
  uint64_t segment_bytes = uint64_t{256} << 20;
  // Largest payload Append accepts (at most 64 MiB, the format's limit).
  uint32_t max_record_bytes = 1u << 20;
  // fdatasync before acknowledging. Off only for tests and tools: a machine crash can then lose
  // acknowledged records, and recovery can then find damage it refuses to repair.
  bool sync = true;
  // Truncate the last segment at its first bad record even when valid records follow it. Those
  // records are lost; for an operator who would rather lose them than not start.
  bool salvage = false;
  // Group commit under load: when the last group held several batches, appends arrive more
  // often than every `group_wait`/2, and fewer than `group_min` are queued, the flusher waits up
  // to `group_wait` for more before it writes and syncs, so that one fdatasync serves more
  // batches. A lone append, or a light load, never waits. An fdatasync costs the flusher and the
  // kernel ~0.3 ms of CPU on a VM's disk; with 16 clients posting at once (`siyu bench ingest`,
  // 60 s), 8 and 3 ms made groups of ~6 batches instead of ~3 and took CPU per event from 11.3
  // to 10.4-10.7 µs, p99 unchanged. Waiting for more than half the clients leaves the CPU idle
  // while they all wait.
  size_t group_min = 8;
  std::chrono::microseconds group_wait{3000};
  // Called on the flusher thread each time the durable high-water mark advances, with the highest
  // durable seq. Must be quick and must not call Append (the flusher would wait for itself).
  std::function<void(uint64_t durable_seq)> on_durable;
  // The page cache keeps only the last `cache_window_bytes` of synced records: older pages (and
  // all of a segment once the next one starts) are dropped after each sync (the records stay in the
  // files; a read of them goes to the disk). The memory freed is what the kernel gives to the next
  // writes, instead of taking ever more fresh pages while the log grows — on a VM, a page the host
  // has not backed yet costs several times the copy into it. 0 keeps everything cached.
  uint64_t cache_window_bytes = uint64_t{32} << 20;
};

struct AppendResult {
  uint64_t first_seq = 0;         // the batch is first_seq, first_seq + 1, ... in order
  std::vector<Locator> locators;  // one per payload, in order
};

// What Open found and repaired.
struct Recovery {
  uint64_t segments = 0;            // segment files found (0 for a new log)
  uint64_t records = 0;             // records verified
  uint64_t dropped_bytes = 0;       // torn tail truncated from the last segment
  std::string truncated_file;       // the segment truncated, if any
  uint64_t truncated_at = 0;        // its new size
  std::string reason;               // why the first dropped record was bad
  uint64_t removed_temp_files = 0;  // segments whose creation a crash interrupted
};

struct Stats {
  uint64_t appends = 0;            // batches acknowledged since Open
  uint64_t records = 0;            // records acknowledged since Open
  uint64_t groups = 0;             // group writes (each one pwritev and one fdatasync per segment)
  uint64_t max_group_appends = 0;  // most batches acknowledged by one group write
  uint64_t segments = 0;           // segment files in the log
  uint64_t bytes = 0;              // durable bytes in all segments (headers and framing included)
};

class Log {
 public:
  // Opens the log in `dir`, creating the directory and the first segment if there is none, and
  // recovers it (see above). INTERNAL on corruption, with the file and offset in the message.
  static StatusOr<std::unique_ptr<Log>> Open(const std::string& dir, Options options = {});

  // Writes out whatever is queued, stops the flusher and closes the files.
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Appends `payloads` as consecutive records and returns once they are durable. INVALID_FIELD
  // ("payloads") for an empty batch or a payload over max_record_bytes; STORE_UNAVAILABLE after a
  // write failure; SHUTTING_DOWN after Close.
  //
  // `queued`, if given, is called once the batch has its seqs and its place in the log (after
  // every batch queued before it, before every batch queued after it), before the wait for the
  // sync; with the batch's first seq. Not called when Append fails before that.
  StatusOr<AppendResult> Append(std::span<const std::string_view> payloads,
                                const std::function<void(uint64_t first_seq)>& queued = {});

  // The payload of the durable record at `locator` (one or two preads; checksum verified).
  // NOT_FOUND if no durable record can be there; INTERNAL if the bytes there are not a record.
  StatusOr<std::string> Read(Locator locator, uint64_t* seq = nullptr) const;

  // Calls `fn` for every durable record with seq >= from_seq, in order, up to the durable
  // high-water mark when Scan started; stops at and returns the first error `fn` returns. Reads
  // each segment sequentially in large blocks and verifies every checksum. `payload` is valid only
  // during the call.
  using ScanFn = std::function<Status(uint64_t seq, Locator locator, std::string_view payload)>;
  Status Scan(uint64_t from_seq, const ScanFn& fn) const;

  // Stops accepting appends (they get SHUTTING_DOWN), writes out what is queued and stops the
  // flusher. Idempotent; the destructor calls it.
  void Close();

  // The seq the next Append will get (records reserved by appends still in flight included).
  uint64_t next_seq() const;
  // The highest durable seq (0 for an empty log): every record up to it is on disk.
  uint64_t durable_seq() const;
  // Durable bytes in all segments.
  uint64_t bytes() const;
  Stats stats() const;
  const Recovery& recovery() const;
  const std::string& dir() const;
  // OK, or the write failure that made the log refuse appends.
  Status health() const;

 private:
  struct Impl;
  explicit Log(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace siyu::eventlog
