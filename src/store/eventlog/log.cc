#include "store/eventlog/log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "common/threads.h"
#include "store/eventlog/crc32c.h"
#include "store/eventlog/format.h"

namespace siyu::eventlog {
namespace {

namespace fs = std::filesystem;
using format::kAlign;
using format::kMaxPayloadBytes;
using format::kRecordHeaderBytes;
using format::kSegmentHeaderBytes;
using format::RecordBytes;

// One batch's encoded records must stay addressable by a locator's 40-bit offset even when the
// batch gets a segment of its own.
constexpr uint64_t kMaxBatchBytes = uint64_t{1} << 30;
// An appending thread keeps its last batch's buffer for the next one up to this size.
constexpr size_t kKeepBatchBytes = size_t{1} << 20;
// Sequential reads (recovery, Scan) go in blocks this large: few syscalls, and the kernel's
// readahead keeps the disk busy meanwhile.
constexpr size_t kScanBlockBytes = size_t{4} << 20;
// Read() fetches this much in its first pread, enough for a typical event in one call.
constexpr size_t kReadFirstBytes = 1024;

std::string ErrnoText(int e) { return std::system_category().message(e); }

Status IoError(std::string_view what, const std::string& path, int e) {
  return Internal(fmt::format("event log: {} {}: {}", what, path, ErrnoText(e)));
}

Status PreadFull(int fd, char* buf, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot read", path, errno);
    }
    if (r == 0) {
      return Internal(
          fmt::format("event log: {} ends at offset {}, before the expected data", path, off));
    }
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

Status PwriteFull(int fd, const char* buf, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, buf, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write", path, errno);
    }
    buf += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

// Reads the records of one segment in order with large sequential preads, checking each one.
// `buf` is the caller's block buffer, reused across segments.
class RecordReader {
 public:
  struct Record {
    uint64_t offset = 0;
    uint64_t seq = 0;
    std::string_view payload;
  };
  enum class Result { kRecord, kEnd, kBad };

  RecordReader(int fd, const std::string& path, uint64_t begin, uint64_t end,
               std::vector<char>& buf)
      : fd_(fd), path_(path), off_(begin), end_(end), buf_(buf), buf_off_(begin) {
    if (buf_.size() < kScanBlockBytes) buf_.resize(kScanBlockBytes);
  }

  // The record at offset(), if it is valid and has seq `expected_seq`; kEnd at the end of the
  // range; kBad (reason in why()) otherwise. `verify` = false skips the checksum, for records a
  // scan only steps over.
  StatusOr<Result> Next(uint64_t expected_seq, bool verify, Record* rec) {
    if (off_ == end_) return Result::kEnd;
    uint64_t left = end_ - off_;
    if (left < kRecordHeaderBytes) {
      why_ = fmt::format("a record header cut short ({} of {} bytes)", left, kRecordHeaderBytes);
      return Result::kBad;
    }
    RETURN_IF_ERROR(Fill(kRecordHeaderBytes));
    const char* p = buf_.data() + (off_ - buf_off_);
    uint32_t len = format::Load32(p + 4);
    if (len > kMaxPayloadBytes) {
      why_ = fmt::format("record length {} is over the format's limit", len);
      return Result::kBad;
    }
    uint64_t size = RecordBytes(len);
    if (size > left) {
      why_ = fmt::format("a record of {} bytes cut short ({} bytes left in the file)", size, left);
      return Result::kBad;
    }
    RETURN_IF_ERROR(Fill(size));
    p = buf_.data() + (off_ - buf_off_);
    if (verify) {
      uint32_t crc = format::RecordCrc(Crc32c(p + kRecordHeaderBytes, len), p);
      if (crc != format::Load32(p)) {
        why_ = "checksum mismatch";
        return Result::kBad;
      }
      for (uint64_t i = kRecordHeaderBytes + len; i < size; ++i) {
        if (p[i] != 0) {
          why_ = "non-zero padding after the payload";
          return Result::kBad;
        }
      }
    }
    uint64_t seq = format::Load64(p + 8);
    if (seq != expected_seq) {
      why_ = fmt::format("sequence number {} where {} was expected", seq, expected_seq);
      return Result::kBad;
    }
    rec->offset = off_;
    rec->seq = seq;
    rec->payload = std::string_view(p + kRecordHeaderBytes, len);
    off_ += size;
    return Result::kRecord;
  }

  uint64_t offset() const { return off_; }
  const std::string& why() const { return why_; }

 private:
  // Makes the `need` bytes at off_ (need <= end_ - off_) available in buf_.
  Status Fill(size_t need) {
    size_t have = static_cast<size_t>(buf_off_ + buf_len_ - off_);
    if (have >= need) return Status::Ok();
    size_t start = static_cast<size_t>(off_ - buf_off_);
    std::memmove(buf_.data(), buf_.data() + start, have);
    buf_off_ = off_;
    buf_len_ = have;
    if (buf_.size() < need) buf_.resize(std::max(need, buf_.size() * 2));
    size_t want = static_cast<size_t>(
        std::min<uint64_t>(buf_.size() - buf_len_, end_ - (buf_off_ + buf_len_)));
    RETURN_IF_ERROR(PreadFull(fd_, buf_.data() + buf_len_, want, buf_off_ + buf_len_, path_));
    buf_len_ += want;
    return Status::Ok();
  }

  int fd_;
  const std::string& path_;
  uint64_t off_;
  uint64_t end_;
  std::vector<char>& buf_;
  uint64_t buf_off_;  // file offset of buf_[0]
  size_t buf_len_ = 0;
  std::string why_;
};

struct Segment {
  Segment(uint32_t ordinal, uint64_t first_seq, std::string path, int fd, uint64_t end)
      : ordinal(ordinal), first_seq(first_seq), path(std::move(path)), fd(fd), end(end) {}
  ~Segment() {
    if (fd >= 0) ::close(fd);
  }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const uint32_t ordinal;
  const uint64_t first_seq;
  const std::string path;
  const int fd;
  // Bytes before this offset have been dropped from the page cache (flusher only).
  uint64_t dropped = 0;
  // Bytes durable (written, when Options::sync is off); readers look no further. Advanced by the
  // flusher after each fdatasync.
  std::atomic<uint64_t> end;
};

// One Append call's records, on its caller's stack while it waits.
struct Batch {
  std::string buf;  // the encoded records
  size_t count = 0;
  uint64_t first_seq = 0;
  uint32_t ordinal = 0;        // segment
  uint64_t offset = 0;         // of the first record in the segment
  bool opens_segment = false;  // the first batch of a new segment: the flusher creates the file

  // Completion. The flusher signals while holding `mu`, so the caller cannot return (and destroy
  // the batch) before the flusher is done with it.
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
};

// A valid record at an aligned offset after `from` in [from, size), with a plausible seq: its
// offset and seq, or nullopt. Candidates are filtered on seq and length before a checksum is
// computed, so garbage costs a few comparisons per 8 bytes.
StatusOr<std::optional<std::pair<uint64_t, uint64_t>>> FindValidRecordAfter(
    int fd, const std::string& path, uint64_t from, uint64_t size, uint64_t expected_seq) {
  const uint64_t max_seq = expected_seq + (size - from) / kRecordHeaderBytes;
  std::vector<char> buf(size_t{1} << 20);
  std::string rec;
  uint64_t p = from + kAlign;
  while (p + kRecordHeaderBytes <= size) {
    const uint64_t chunk = p;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - chunk));
    RETURN_IF_ERROR(PreadFull(fd, buf.data(), n, chunk, path));
    for (; p + kRecordHeaderBytes <= chunk + n; p += kAlign) {
      const char* h = buf.data() + (p - chunk);
      uint64_t seq = format::Load64(h + 8);
      if (seq < expected_seq || seq > max_seq) continue;
      uint32_t len = format::Load32(h + 4);
      if (len > kMaxPayloadBytes || RecordBytes(len) > size - p) continue;
      rec.resize(kRecordHeaderBytes + len);
      RETURN_IF_ERROR(PreadFull(fd, rec.data(), rec.size(), p, path));
      uint32_t crc = format::RecordCrc(Crc32c(rec.data() + kRecordHeaderBytes, len), rec.data());
      if (crc == format::Load32(rec.data())) return std::optional(std::make_pair(p, seq));
    }
  }
  return std::optional<std::pair<uint64_t, uint64_t>>();
}

}  // namespace

struct Log::Impl {
  std::string dir;
  Options options;
  int dir_fd = -1;
  int lock_fd = -1;
  Recovery recovery;

  // The segments in ordinal order (contiguous ordinals). Only the flusher (and Open) adds to it,
  // under the exclusive lock; a Segment never moves or goes away until the log is destroyed, so
  // readers keep a pointer after dropping the shared lock.
  mutable std::shared_mutex seg_mu;
  std::vector<std::unique_ptr<Segment>> segments;

  // Appenders reserve seqs and space and queue under `mu`, in the order of the file.
  std::mutex mu;
  std::condition_variable flusher_cv;
  std::vector<Batch*> queue;
  uint64_t next_seq = 1;
  uint32_t tail_ordinal = 0;  // the segment the next batch goes to, unless it rolls
  uint64_t tail_offset = 0;   // reserved end of that segment
  bool closing = false;
  Status failed;  // set once, by the flusher; appends are refused from then on
  // The time between appends, smoothed (FlusherLoop waits for more only when they come often).
  std::chrono::steady_clock::time_point last_append{};
  double append_gap_us = 1e9;

  std::mutex close_mu;
  std::thread flusher;
  std::vector<iovec> iov;  // flusher only

  std::atomic<uint64_t> durable_seq{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> stat_appends{0};
  std::atomic<uint64_t> stat_records{0};
  std::atomic<uint64_t> stat_groups{0};
  std::atomic<uint64_t> stat_max_group{0};

  ~Impl() {
    segments.clear();
    if (lock_fd >= 0) ::close(lock_fd);
    if (dir_fd >= 0) ::close(dir_fd);
  }

  std::string PathOf(std::string_view name) const { return dir + "/" + std::string(name); }

  Status SyncDir() {
    if (::fsync(dir_fd) != 0) return IoError("cannot fsync the directory", dir, errno);
    return Status::Ok();
  }

  const Segment* FindSegment(uint32_t ordinal) const {
    std::shared_lock lock(seg_mu);
    if (segments.empty() || ordinal < segments.front()->ordinal) return nullptr;
    size_t i = ordinal - segments.front()->ordinal;
    return i < segments.size() ? segments[i].get() : nullptr;
  }

  // Creates segment `ordinal` starting at `first_seq`. The header is written and synced under a
  // temporary name and then renamed, so a *.seg file always starts with a complete header and a
  // crash in between leaves only a *.seg.tmp, which Open deletes.
  Status CreateSegment(uint32_t ordinal, uint64_t first_seq) {
    std::string name = format::SegmentFileName(first_seq);
    std::string path = PathOf(name);
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot create", tmp, errno);
    char header[kSegmentHeaderBytes];
    format::EncodeSegmentHeader({ordinal, first_seq}, header);
    Status s = PwriteFull(fd, header, sizeof header, 0, tmp);
    if (s.ok() && options.sync && ::fdatasync(fd) != 0) s = IoError("cannot fdatasync", tmp, errno);
    if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
      s = IoError("cannot rename to " + name, tmp, errno);
    }
    if (s.ok() && options.sync) s = SyncDir();
    if (!s.ok()) {
      ::close(fd);
      return s;
    }
    {
      std::unique_lock lock(seg_mu);
      segments.push_back(
          std::make_unique<Segment>(ordinal, first_seq, std::move(path), fd, kSegmentHeaderBytes));
    }
    bytes.fetch_add(kSegmentHeaderBytes, std::memory_order_relaxed);
    return Status::Ok();
  }

  // Opens and verifies the segment file `name` (first seq `name_seq`), truncating a torn tail if
  // it is the last one, and adds it to `segments`. `expected_seq` is the seq its first record must
  // have (0 for the first segment: any); on return, the seq after its last record.
  Status RecoverSegment(const std::string& name, uint64_t name_seq, bool last,
                        uint64_t& expected_seq, std::vector<char>& buf) {
    std::string path = PathOf(name);
    int fd = ::open(path.c_str(), (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return IoError("cannot open", path, errno);
    // Owned by the Segment once it is made; closed here on every earlier return.
    std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { ::close(*f); });
    struct stat st;
    if (::fstat(fd, &st) != 0) return IoError("cannot stat", path, errno);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size < kSegmentHeaderBytes) {
      return Internal(fmt::format(
          "event log: corrupt segment {} at offset 0: {} bytes, shorter than a segment header; "
          "restore the log directory from a backup",
          path, size));
    }
    char hbytes[kSegmentHeaderBytes];
    RETURN_IF_ERROR(PreadFull(fd, hbytes, sizeof hbytes, 0, path));
    std::string why;
    auto header = format::DecodeSegmentHeader(hbytes, &why);
    if (!header) {
      return Internal(fmt::format(
          "event log: corrupt segment {} at offset 0: {}; restore the log directory from a backup",
          path, why));
    }
    if (header->first_seq != name_seq || name_seq == 0) {
      return Internal(fmt::format(
          "event log: corrupt segment {} at offset 0: its header says first seq {}, its name {}",
          path, header->first_seq, name_seq));
    }
    if (segments.empty()) {
      if (header->ordinal == 0) {
        return Internal(fmt::format("event log: corrupt segment {} at offset 0: ordinal 0", path));
      }
    } else {
      const Segment& prev = *segments.back();
      if (header->ordinal != prev.ordinal + 1 || header->first_seq != expected_seq) {
        return Internal(fmt::format(
            "event log: segment {} (ordinal {}, first seq {}) does not follow {} (ordinal {}, "
            "next seq {}): a segment is missing or does not belong to this log",
            path, header->ordinal, header->first_seq, prev.path, prev.ordinal, expected_seq));
      }
    }
    expected_seq = header->first_seq;

    RecordReader reader(fd, path, kSegmentHeaderBytes, size, buf);
    RecordReader::Record rec;
    uint64_t end = size;
    for (;;) {
      ASSIGN_OR_RETURN(auto r, reader.Next(expected_seq, /*verify=*/true, &rec));
      if (r == RecordReader::Result::kEnd) break;
      if (r == RecordReader::Result::kRecord) {
        ++expected_seq;
        ++recovery.records;
        continue;
      }
      const uint64_t bad = reader.offset();
      if (!last) {
        return Internal(fmt::format(
            "event log: corrupt record in {} at offset {}: {}; it is not the last segment, so this "
            "is damage, not an interrupted append: restore the log directory from a backup",
            path, bad, reader.why()));
      }
      if (!options.salvage) {
        ASSIGN_OR_RETURN(auto follow, FindValidRecordAfter(fd, path, bad, size, expected_seq));
        if (follow) {
          return Internal(fmt::format(
              "event log: corrupt record in {} at offset {}: {}; a valid record (seq {}) follows "
              "at offset {}, so acknowledged records were damaged (an interrupted append leaves "
              "only a bad tail): restore the log directory from a backup, or open with salvage "
              "to truncate the segment at offset {} and lose the records from seq {} on",
              path, bad, reader.why(), follow->second, follow->first, bad, expected_seq));
        }
      }
      if (::ftruncate(fd, static_cast<off_t>(bad)) != 0) {
        return IoError("cannot truncate the torn tail of", path, errno);
      }
      if (::fsync(fd) != 0) return IoError("cannot fsync", path, errno);
      recovery.dropped_bytes = size - bad;
      recovery.truncated_file = path;
      recovery.truncated_at = bad;
      recovery.reason = reader.why();
      spdlog::warn(
          "event log: dropped {} bytes at the end of {} from offset {} ({}); seq {} is next",
          size - bad, path, bad, reader.why(), expected_seq);
      end = bad;
      break;
    }
    guard.release();
    segments.push_back(
        std::make_unique<Segment>(header->ordinal, header->first_seq, path, fd, end));
    bytes.fetch_add(end, std::memory_order_relaxed);
    return Status::Ok();
  }

  Status Recover() {
    std::error_code ec;
    std::vector<std::pair<uint64_t, std::string>> names;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string name = entry.path().filename().string();
      if (name.size() > format::kTempSuffix.size() && name.ends_with(format::kTempSuffix)) {
        // A segment whose creation was interrupted: it never held a record.
        if (::unlink(PathOf(name).c_str()) != 0) {
          return IoError("cannot remove", PathOf(name), errno);
        }
        ++recovery.removed_temp_files;
        continue;
      }
      if (auto seq = format::ParseSegmentFileName(name)) names.emplace_back(*seq, name);
    }
    if (ec) return Internal(fmt::format("event log: cannot list {}: {}", dir, ec.message()));
    if (recovery.removed_temp_files > 0 && options.sync) RETURN_IF_ERROR(SyncDir());
    std::sort(names.begin(), names.end());
    recovery.segments = names.size();
    std::vector<char> buf;
    uint64_t expected_seq = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      RETURN_IF_ERROR(RecoverSegment(names[i].second, names[i].first, i + 1 == names.size(),
                                     expected_seq, buf));
    }
    if (segments.empty()) {
      RETURN_IF_ERROR(CreateSegment(1, 1));
      expected_seq = 1;
    }
    const Segment& tail = *segments.back();
    next_seq = expected_seq;
    tail_ordinal = tail.ordinal;
    tail_offset = tail.end.load();
    durable_seq.store(expected_seq - 1);
    return Status::Ok();
  }

  // Wakes the callers of group[from, to) with `s`.
  static void Complete(std::vector<Batch*>& group, size_t from, size_t to, const Status& s) {
    for (size_t i = from; i < to; ++i) {
      Batch* b = group[i];
      std::lock_guard lock(b->mu);
      b->status = s;
      b->done = true;
      b->cv.notify_one();
      // `b` may be gone once the lock is released.
    }
  }

  // Writes group[from, to), which all go to `seg` back to back, with as few pwritev calls as the
  // iovec limit allows.
  Status WriteRun(Segment& seg, std::vector<Batch*>& group, size_t from, size_t to) {
    iov.clear();
    for (size_t i = from; i < to; ++i) iov.push_back({group[i]->buf.data(), group[i]->buf.size()});
    uint64_t off = group[from]->offset;
    size_t k = 0;
    while (k < iov.size()) {
      int n = static_cast<int>(std::min<size_t>(iov.size() - k, IOV_MAX));
      ssize_t w = ::pwritev(seg.fd, &iov[k], n, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return IoError("cannot write", seg.path, errno);
      }
      off += static_cast<uint64_t>(w);
      size_t left = static_cast<size_t>(w);
      while (k < iov.size() && left >= iov[k].iov_len) {
        left -= iov[k].iov_len;
        ++k;
      }
      if (left > 0) {  // a short write: continue inside this iovec
        iov[k].iov_base = static_cast<char*>(iov[k].iov_base) + left;
        iov[k].iov_len -= left;
      }
    }
    return Status::Ok();
  }

  // Drops `seg`'s cached pages more than the cache window behind `end` (a multiple of 4 MiB at a
  // time, so that the call is rare). Advice only: a failure changes nothing but the cache.
  void DropCachedBefore(Segment& seg, uint64_t end) {
    constexpr uint64_t kStep = uint64_t{4} << 20;
    const uint64_t window = options.cache_window_bytes;
    if (window == 0 || end < window + kStep) return;
    const uint64_t upto = (end - window) / kStep * kStep;
    if (upto <= seg.dropped) return;
    ::posix_fadvise(seg.fd, static_cast<off_t>(seg.dropped), static_cast<off_t>(upto - seg.dropped),
                    POSIX_FADV_DONTNEED);
    seg.dropped = upto;
  }

  // Makes `group` durable, waking each run of batches as soon as its segment is synced. On
  // failure, marks the log failed and fails the batches not yet acknowledged.
  void WriteGroup(std::vector<Batch*>& group) {
    size_t i = 0;
    Status s;
    while (i < group.size()) {
      if (group[i]->opens_segment) {
        // The segment before is complete: none of it stays cached.
        if (!segments.empty() && options.cache_window_bytes > 0) {
          Segment& prev = *segments.back();
          ::posix_fadvise(prev.fd, static_cast<off_t>(prev.dropped), 0, POSIX_FADV_DONTNEED);
          prev.dropped = prev.end.load();
        }
        s = CreateSegment(group[i]->ordinal, group[i]->first_seq);
        if (!s.ok()) break;
      }
      Segment& seg = *segments.back();  // only this thread changes `segments`
      size_t j = i + 1;
      while (j < group.size() && !group[j]->opens_segment) ++j;
      const uint64_t seg_end = seg.end.load();
      if (seg.ordinal != group[i]->ordinal || seg_end != group[i]->offset) {
        // A defect in the reservation logic; failing is safer than writing at a wrong offset.
        s =
            Internal(fmt::format("event log: a batch reserved segment {} at {}, "
                                 "but the tail is segment {} at {}",
                                 group[i]->ordinal, group[i]->offset, seg.ordinal, seg_end));
        break;
      }
      s = WriteRun(seg, group, i, j);
      if (s.ok() && options.sync && ::fdatasync(seg.fd) != 0) {
        s = IoError("cannot fdatasync", seg.path, errno);
      }
      if (!s.ok()) break;
      const Batch& last = *group[j - 1];
      const uint64_t end = last.offset + last.buf.size();
      DropCachedBefore(seg, end);
      const uint64_t high = last.first_seq + last.count - 1;
      uint64_t records = 0;
      for (size_t k = i; k < j; ++k) records += group[k]->count;
      bytes.fetch_add(end - seg_end, std::memory_order_relaxed);
      seg.end.store(end, std::memory_order_release);
      durable_seq.store(high, std::memory_order_release);
      stat_appends.fetch_add(j - i, std::memory_order_relaxed);
      stat_records.fetch_add(records, std::memory_order_relaxed);
      stat_groups.fetch_add(1, std::memory_order_relaxed);
      if (j - i > stat_max_group.load(std::memory_order_relaxed)) {
        stat_max_group.store(j - i, std::memory_order_relaxed);
      }
      Complete(group, i, j, Status::Ok());
      if (options.on_durable) options.on_durable(high);
      i = j;
    }
    if (i == group.size()) return;
    spdlog::error("{}; refusing appends from now on", s.message());
    Status refuse(ErrorCode::kStoreUnavailable,
                  fmt::format("the event log refuses appends after a write failure ({}); a "
                              "failed write or fsync cannot be retried safely: restart to recover "
                              "the log from its files",
                              s.message()));
    {
      std::lock_guard lock(mu);
      failed = refuse;
    }
    Complete(group, i, group.size(), refuse);
  }

  void FlusherLoop() {
    std::vector<Batch*> group;
    size_t last_group = 0;
    for (;;) {
      Status refused;
      {
        std::unique_lock lock(mu);
        flusher_cv.wait(lock, [&] { return closing || !queue.empty(); });
        if (queue.empty()) return;  // closing, and everything queued is written
        // Wait only where appends come often enough for the wait to gather several more: under
        // a light load it would only add latency.
        if (last_group > 1 && queue.size() < options.group_min &&
            append_gap_us * 2 < static_cast<double>(options.group_wait.count())) {
          flusher_cv.wait_for(lock, options.group_wait,
                              [&] { return closing || queue.size() >= options.group_min; });
        }
        group.swap(queue);
        last_group = group.size();
        refused = failed;
      }
      if (refused.ok()) {
        WriteGroup(group);
      } else {
        Complete(group, 0, group.size(), refused);
      }
      group.clear();
    }
  }
};

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Log::~Log() { Close(); }

StatusOr<std::unique_ptr<Log>> Log::Open(const std::string& dir, Options options) {
  if (options.segment_bytes < kSegmentHeaderBytes + RecordBytes(0) ||
      options.segment_bytes > (uint64_t{1} << kLocatorOffsetBits) - kMaxBatchBytes) {
    return InvalidField(
        "segment_bytes",
        fmt::format("must be between {} and {} bytes", kSegmentHeaderBytes + RecordBytes(0),
                    (uint64_t{1} << kLocatorOffsetBits) - kMaxBatchBytes));
  }
  if (options.max_record_bytes > kMaxPayloadBytes) {
    return InvalidField("max_record_bytes",
                        fmt::format("must be at most {} bytes", kMaxPayloadBytes));
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = std::move(options);

  std::error_code ec;
  bool created = fs::create_directories(dir, ec);
  if (ec) return Internal(fmt::format("event log: cannot create {}: {}", dir, ec.message()));
  impl->dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (impl->dir_fd < 0) return IoError("cannot open the directory", dir, errno);
  if (created && impl->options.sync) {
    // The new directory's own entry must be durable too.
    fs::path parent = fs::absolute(fs::path(dir)).lexically_normal().parent_path();
    int pfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd >= 0) {
      (void)::fsync(pfd);
      ::close(pfd);
    }
  }
  std::string lock_path = impl->PathOf("LOCK");
  impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl->lock_fd < 0) return IoError("cannot open", lock_path, errno);
  if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status(ErrorCode::kStoreUnavailable,
                    fmt::format("the event log in {} is already open (by this or another "
                                "process); only one may append to it",
                                dir));
    }
    return IoError("cannot lock", lock_path, errno);
  }
  RETURN_IF_ERROR(impl->Recover());
  Impl* raw = impl.get();
  raw->flusher = std::thread([raw] {
    NameThisThread("siyu-log-flush");
    raw->FlusherLoop();
  });
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

StatusOr<AppendResult> Log::Append(std::span<const std::string_view> payloads,
                                   const std::function<void(uint64_t first_seq)>& queued) {
  Impl& im = *impl_;
  if (payloads.empty()) return InvalidField("payloads", "an append needs at least one record");
  uint64_t total = 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i].size() > im.options.max_record_bytes) {
      return InvalidField("payloads", fmt::format("record {} has {} bytes; the limit is {}", i,
                                                  payloads[i].size(), im.options.max_record_bytes));
    }
    total += RecordBytes(payloads[i].size());
  }
  if (total > kMaxBatchBytes) {
    return InvalidField("payloads", fmt::format("the batch takes {} bytes; the limit is {}", total,
                                                kMaxBatchBytes));
  }

  // Encode and checksum the payloads before taking the lock, so appenders do that in parallel;
  // only the seq (and the 12 header bytes' share of the checksum) is added under the lock.
  Batch b;
  b.count = payloads.size();
  // The buffer of this thread's last batch, its memory reused (batches are tens of kilobytes; a
  // fresh one each time is a cold allocation), and given back below when the batch is done.
  thread_local std::string spare;
  b.buf.swap(spare);
  b.buf.clear();
  b.buf.resize(total);  // zero-filled: the padding
  char* p = b.buf.data();
  for (std::string_view payload : payloads) {
    format::Store32(p, Crc32c(payload.data(), payload.size()));
    format::Store32(p + 4, static_cast<uint32_t>(payload.size()));
    if (!payload.empty()) std::memcpy(p + kRecordHeaderBytes, payload.data(), payload.size());
    p += RecordBytes(payload.size());
  }
  {
    std::lock_guard lock(im.mu);
    if (!im.failed.ok()) return im.failed;
    if (im.closing) return Status(ErrorCode::kShuttingDown, "the event log is closed");
    if (im.tail_offset > kSegmentHeaderBytes && im.tail_offset + total > im.options.segment_bytes) {
      if (im.tail_ordinal >= kMaxSegmentOrdinal) {
        return Internal("event log: out of segment numbers; the log must be rotated");
      }
      ++im.tail_ordinal;
      im.tail_offset = kSegmentHeaderBytes;
      b.opens_segment = true;
    }
    b.first_seq = im.next_seq;
    b.ordinal = im.tail_ordinal;
    b.offset = im.tail_offset;
    im.next_seq += b.count;
    im.tail_offset += total;
    p = b.buf.data();
    for (uint64_t seq = b.first_seq; seq < b.first_seq + b.count; ++seq) {
      format::Store64(p + 8, seq);
      format::Store32(p, format::RecordCrc(format::Load32(p), p));
      p += RecordBytes(format::Load32(p + 4));
    }
    im.queue.push_back(&b);
    const auto now = std::chrono::steady_clock::now();
    const double gap = std::chrono::duration<double, std::micro>(now - im.last_append).count();
    im.append_gap_us = im.append_gap_us > 1e8 ? gap : 0.9 * im.append_gap_us + 0.1 * gap;
    im.last_append = now;
  }
  im.flusher_cv.notify_one();
  if (queued) queued(b.first_seq);
  {
    std::unique_lock lock(b.mu);
    b.cv.wait(lock, [&] { return b.done; });
  }
  if (!b.status.ok()) return b.status;

  AppendResult result;
  result.first_seq = b.first_seq;
  result.locators.reserve(b.count);
  uint64_t off = b.offset;
  for (std::string_view payload : payloads) {
    result.locators.push_back(MakeLocator(b.ordinal, off));
    off += RecordBytes(payload.size());
  }
  if (b.buf.capacity() <= kKeepBatchBytes) spare.swap(b.buf);
  return result;
}

StatusOr<std::string> Log::Read(Locator locator, uint64_t* seq) const {
  const Segment* seg = impl_->FindSegment(LocatorSegment(locator));
  const uint64_t off = LocatorOffset(locator);
  const uint64_t end = seg ? seg->end.load(std::memory_order_acquire) : 0;
  if (!seg || off < kSegmentHeaderBytes || off % kAlign != 0 || off + kRecordHeaderBytes > end) {
    return Status(ErrorCode::kNotFound,
                  fmt::format("no event log record at locator {:#x}", locator));
  }
  char first[kReadFirstBytes];
  const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof first, end - off));
  RETURN_IF_ERROR(PreadFull(seg->fd, first, n, off, seg->path));
  const uint32_t len = format::Load32(first + 4);
  if (len > kMaxPayloadBytes || RecordBytes(len) > end - off) {
    return Internal(fmt::format("event log: no valid record in {} at offset {} (locator {:#x})",
                                seg->path, off, locator));
  }
  std::string payload(len, '\0');
  const size_t have = std::min<size_t>(len, n - kRecordHeaderBytes);
  std::memcpy(payload.data(), first + kRecordHeaderBytes, have);
  if (have < len) {
    RETURN_IF_ERROR(PreadFull(seg->fd, payload.data() + have, len - have,
                              off + kRecordHeaderBytes + have, seg->path));
  }
  if (format::RecordCrc(Crc32c(payload.data(), payload.size()), first) != format::Load32(first)) {
    return Internal(fmt::format("event log: checksum mismatch in {} at offset {} (locator {:#x})",
                                seg->path, off, locator));
  }
  if (seq) *seq = format::Load64(first + 8);
  return payload;
}

Status Log::Scan(uint64_t from_seq, const ScanFn& fn) const {
  const Impl& im = *impl_;
  const uint64_t limit = im.durable_seq.load(std::memory_order_acquire);
  from_seq = std::max<uint64_t>(from_seq, 1);
  if (from_seq > limit) return Status::Ok();
  std::vector<std::pair<const Segment*, uint64_t>> segs;
  {
    std::shared_lock lock(im.seg_mu);
    for (const auto& s : im.segments) segs.emplace_back(s.get(), s->end.load());
  }
  // The last segment starting at or before from_seq.
  auto it = std::upper_bound(segs.begin(), segs.end(), from_seq,
                             [](uint64_t seq, const auto& s) { return seq < s.first->first_seq; });
  if (it != segs.begin()) --it;
  std::vector<char> buf;
  for (; it != segs.end(); ++it) {
    const Segment& seg = *it->first;
    RecordReader reader(seg.fd, seg.path, kSegmentHeaderBytes, it->second, buf);
    RecordReader::Record rec;
    for (uint64_t expected = seg.first_seq;; ++expected) {
      if (expected > limit) return Status::Ok();
      ASSIGN_OR_RETURN(auto r, reader.Next(expected, expected >= from_seq, &rec));
      if (r == RecordReader::Result::kEnd) break;
      if (r == RecordReader::Result::kBad) {
        return Internal(fmt::format("event log: corrupt record in {} at offset {}: {}", seg.path,
                                    reader.offset(), reader.why()));
      }
      if (rec.seq >= from_seq) {
        RETURN_IF_ERROR(fn(rec.seq, MakeLocator(seg.ordinal, rec.offset), rec.payload));
      }
    }
  }
  return Status::Ok();
}

void Log::Close() {
  Impl& im = *impl_;
  std::lock_guard close_lock(im.close_mu);
  {
    std::lock_guard lock(im.mu);
    im.closing = true;
  }
  im.flusher_cv.notify_all();
  if (im.flusher.joinable()) im.flusher.join();
}

uint64_t Log::next_seq() const {
  std::lock_guard lock(impl_->mu);
  return impl_->next_seq;
}

uint64_t Log::durable_seq() const { return impl_->durable_seq.load(std::memory_order_acquire); }

uint64_t Log::bytes() const { return impl_->bytes.load(std::memory_order_relaxed); }

Stats Log::stats() const {
  const Impl& im = *impl_;
  Stats s;
  s.appends = im.stat_appends.load(std::memory_order_relaxed);
  s.records = im.stat_records.load(std::memory_order_relaxed);
  s.groups = im.stat_groups.load(std::memory_order_relaxed);
  s.max_group_appends = im.stat_max_group.load(std::memory_order_relaxed);
  s.bytes = im.bytes.load(std::memory_order_relaxed);
  std::shared_lock lock(im.seg_mu);
  s.segments = im.segments.size();
  return s;
}

const Recovery& Log::recovery() const { return impl_->recovery; }

const std::string& Log::dir() const { return impl_->dir; }

Status Log::health() const {
  std::lock_guard lock(impl_->mu);
  return impl_->failed;
}

}  // namespace siyu::eventlog
