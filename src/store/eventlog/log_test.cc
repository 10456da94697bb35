#include "store/eventlog/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "store/eventlog/format.h"

namespace siyu::eventlog {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test (ctest runs test cases in parallel processes), removed afterwards.
class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("siyu-eventlog-" + RandomBase62(10))) {}
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::string file(uint64_t first_seq) const {
    return (path_ / format::SegmentFileName(first_seq)).string();
  }

 private:
  fs::path path_;
};

std::unique_ptr<Log> MustOpen(const std::string& dir, Options o = {}) {
  auto log = Log::Open(dir, std::move(o));
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  return log.ok() ? std::move(log).value() : nullptr;
}

AppendResult MustAppend(Log& log, const std::vector<std::string>& payloads) {
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  auto r = log.Append(views);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : AppendResult{};
}

std::string MustRead(const Log& log, Locator l, uint64_t* seq = nullptr) {
  auto r = log.Read(l, seq);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::string();
}

// Every record from `from`, in order, checking that seqs are dense and locators read back.
std::vector<std::string> ScanAll(const Log& log, uint64_t from = 1) {
  std::vector<std::string> out;
  uint64_t want = from;
  Status s = log.Scan(from, [&](uint64_t seq, Locator l, std::string_view payload) {
    EXPECT_EQ(seq, want++);
    out.emplace_back(payload);
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// A payload whose content and length (0..max_len) follow from `i`, with some binary bytes.
std::string Payload(uint64_t i, size_t max_len = 700) {
  uint64_t h = i * 0x9e3779b97f4a7c15ULL;
  std::string s = "event-" + std::to_string(i) + ":";
  s.resize((h >> 20) % (max_len + 1), static_cast<char>(h >> 8));
  if (s.size() > 3) s[s.size() / 2] = '\0';
  return s;
}

uint64_t FileSize(const std::string& path) { return fs::file_size(path); }

void FlipByte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  char c;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  c ^= 0x20;
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

void AppendBytes(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// ---- appends, reads, scans ----------------------------------------------------------------------

TEST(EventLogTest, RoundTrip) {
  TempDir dir;
  std::vector<std::string> payloads = {"first", "", std::string("bin\0ary\xff", 8)};
  AppendResult r;
  {
    auto log = MustOpen(dir.str());
    ASSERT_TRUE(log);
    EXPECT_EQ(log->next_seq(), 1u);
    EXPECT_EQ(log->durable_seq(), 0u);
    EXPECT_EQ(log->recovery().segments, 0u);
    r = MustAppend(*log, payloads);
    EXPECT_EQ(r.first_seq, 1u);
    ASSERT_EQ(r.locators.size(), 3u);
    EXPECT_EQ(log->next_seq(), 4u);
    EXPECT_EQ(log->durable_seq(), 3u);
    for (size_t i = 0; i < payloads.size(); ++i) {
      uint64_t seq = 0;
      EXPECT_EQ(MustRead(*log, r.locators[i], &seq), payloads[i]);
      EXPECT_EQ(seq, 1 + i);
    }
    EXPECT_EQ(ScanAll(*log), payloads);
    EXPECT_EQ(ScanAll(*log, 3), std::vector<std::string>{payloads[2]});
    EXPECT_TRUE(ScanAll(*log, 4).empty());
    const uint64_t expect_bytes = format::kSegmentHeaderBytes + format::RecordBytes(5) +
                                  format::RecordBytes(0) + format::RecordBytes(8);
    EXPECT_EQ(log->bytes(), expect_bytes);
    EXPECT_EQ(FileSize(dir.file(1)), expect_bytes);
    Stats st = log->stats();
    EXPECT_EQ(st.appends, 1u);
    EXPECT_EQ(st.records, 3u);
    EXPECT_EQ(st.segments, 1u);
  }
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovery().segments, 1u);
  EXPECT_EQ(log->recovery().records, 3u);
  EXPECT_EQ(log->recovery().dropped_bytes, 0u);
  EXPECT_EQ(log->next_seq(), 4u);
  EXPECT_EQ(log->durable_seq(), 3u);
  for (size_t i = 0; i < payloads.size(); ++i)
    EXPECT_EQ(MustRead(*log, r.locators[i]), payloads[i]);
  EXPECT_EQ(MustAppend(*log, {"fourth"}).first_seq, 4u);
  payloads.push_back("fourth");
  EXPECT_EQ(ScanAll(*log), payloads);
}

TEST(EventLogTest, ManyRecordsAcrossSegmentRolls) {
  TempDir dir;
  Options o;
  o.segment_bytes = 4096;
  o.sync = false;  // rolls with fsync are covered by the concurrency and crash tests
  std::vector<std::string> all;
  std::vector<Locator> locators;
  std::mt19937 rng(1);
  {
    auto log = MustOpen(dir.str(), o);
    ASSERT_TRUE(log);
    for (int b = 0; b < 400; ++b) {
      std::vector<std::string> batch(1 + rng() % 10);
      for (auto& p : batch) p = Payload(all.size() + (&p - batch.data()));
      AppendResult r = MustAppend(*log, batch);
      ASSERT_EQ(r.first_seq, all.size() + 1);
      // A batch never spans segments.
      for (Locator l : r.locators) EXPECT_EQ(LocatorSegment(l), LocatorSegment(r.locators[0]));
      all.insert(all.end(), batch.begin(), batch.end());
      locators.insert(locators.end(), r.locators.begin(), r.locators.end());
    }
    EXPECT_GT(log->stats().segments, 50u);
    EXPECT_EQ(ScanAll(*log), all);
  }
  // Segment files are named by their first seq, and only a lone batch makes one oversized.
  uint64_t total = 0;
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.str())) {
    if (e.path().extension() != ".seg") continue;
    ++files;
    total += e.file_size();
  }
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovery().segments, files);
  EXPECT_EQ(log->recovery().records, all.size());
  EXPECT_EQ(log->bytes(), total);
  EXPECT_EQ(ScanAll(*log), all);
  for (size_t i = 0; i < all.size(); ++i) {
    uint64_t seq = 0;
    ASSERT_EQ(MustRead(*log, locators[i], &seq), all[i]);
    ASSERT_EQ(seq, i + 1);
  }
  // Scans starting anywhere, including inside a segment and at a segment's first record.
  for (uint64_t from :
       {uint64_t{2}, uint64_t{77}, uint64_t{all.size() / 2}, uint64_t{all.size()}}) {
    auto part = ScanAll(*log, from);
    ASSERT_EQ(part.size(), all.size() - from + 1) << from;
    EXPECT_TRUE(std::equal(part.begin(), part.end(), all.begin() + (from - 1))) << from;
  }
  Locator second_segment = 0;
  for (Locator l : locators) {
    if (LocatorSegment(l) == 2) {
      second_segment = l;
      break;
    }
  }
  ASSERT_NE(second_segment, 0u);
  uint64_t first_of_second = 0;
  MustRead(*log, second_segment, &first_of_second);
  EXPECT_TRUE(fs::exists(dir.file(first_of_second)));
  EXPECT_EQ(ScanAll(*log, first_of_second).size(), all.size() - first_of_second + 1);
}

TEST(EventLogTest, ABatchLargerThanASegmentGetsOneOfItsOwn) {
  TempDir dir;
  Options o;
  o.segment_bytes = 1024;
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  AppendResult a = MustAppend(*log, {"small"});
  std::vector<std::string> big(10, std::string(300, 'x'));
  AppendResult b = MustAppend(*log, big);
  AppendResult c = MustAppend(*log, {"after"});
  EXPECT_EQ(LocatorSegment(a.locators[0]), 1u);
  EXPECT_EQ(LocatorSegment(b.locators[0]), 2u);
  EXPECT_EQ(LocatorSegment(b.locators[9]), 2u);
  EXPECT_EQ(LocatorSegment(c.locators[0]), 3u);
  EXPECT_EQ(FileSize(dir.file(2)), format::kSegmentHeaderBytes + 10 * format::RecordBytes(300));
  EXPECT_EQ(MustRead(*log, b.locators[9]), big[9]);
  EXPECT_EQ(ScanAll(*log).size(), 12u);
}

TEST(EventLogTest, RejectsBadInputAndUnknownLocators) {
  TempDir dir;
  Options o;
  o.max_record_bytes = 100;
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  auto empty = log->Append({});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), ErrorCode::kInvalidField);
  const std::string big(101, 'x');
  std::vector<std::string_view> too_big = {"ok", big};
  auto over = log->Append(too_big);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), ErrorCode::kInvalidField);
  EXPECT_NE(over.status().message().find("record 1 has 101 bytes"), std::string::npos);
  // Nothing was written by the refused appends.
  EXPECT_EQ(log->next_seq(), 1u);

  AppendResult r = MustAppend(*log, {"a", "b"});
  for (Locator l : {Locator{0}, MakeLocator(2, format::kSegmentHeaderBytes), MakeLocator(1, 0),
                    r.locators[1] + format::RecordBytes(1), r.locators[0] + 1}) {
    auto read = log->Read(l);
    ASSERT_FALSE(read.ok()) << l;
    EXPECT_EQ(read.status().code(), ErrorCode::kNotFound) << l;
  }
  // Inside a record: the bytes there do not check out as one.
  auto inside = log->Read(r.locators[1] + 8);
  ASSERT_FALSE(inside.ok());
  EXPECT_EQ(inside.status().code(), ErrorCode::kInternal);
  Options tiny;
  tiny.segment_bytes = 10;
  auto bad_options = Log::Open(dir.str() + "/other", tiny);
  ASSERT_FALSE(bad_options.ok());
  EXPECT_EQ(bad_options.status().field(), "segment_bytes");
}

TEST(EventLogTest, OnlyOneLogMayHaveADirectoryOpen) {
  TempDir dir;
  auto first = MustOpen(dir.str());
  ASSERT_TRUE(first);
  auto second = Log::Open(dir.str());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_NE(second.status().message().find("already open"), std::string::npos);
  first.reset();
  EXPECT_TRUE(MustOpen(dir.str()));
}

TEST(EventLogTest, CloseRefusesLaterAppends) {
  TempDir dir;
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  MustAppend(*log, {"a"});
  log->Close();
  log->Close();
  std::vector<std::string_view> one = {"b"};
  auto r = log->Append(one);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kShuttingDown);
  EXPECT_EQ(ScanAll(*log), std::vector<std::string>{"a"});
}

TEST(EventLogTest, DurableHookAndUnsyncedMode) {
  TempDir dir;
  std::vector<uint64_t> marks;
  Options o;
  o.sync = false;
  o.on_durable = [&](uint64_t seq) { marks.push_back(seq); };  // the flusher is the only caller
  {
    auto log = MustOpen(dir.str(), o);
    ASSERT_TRUE(log);
    for (int i = 0; i < 20; ++i) MustAppend(*log, {Payload(i), Payload(i + 100)});
    EXPECT_EQ(log->durable_seq(), 40u);
  }
  ASSERT_FALSE(marks.empty());
  EXPECT_TRUE(std::is_sorted(marks.begin(), marks.end()));
  EXPECT_EQ(marks.back(), 40u);
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  EXPECT_EQ(ScanAll(*log).size(), 40u);
}

// Resident pages of `path` in [from, to), by mincore on a mapping of the file.
size_t ResidentPages(const std::string& path, uint64_t from, uint64_t to) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SIZE_MAX;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* m = ::mmap(nullptr, to, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return SIZE_MAX;
  std::vector<unsigned char> vec((to + page - 1) / page);
  size_t n = SIZE_MAX;
  if (::mincore(m, to, vec.data()) == 0) {
    n = 0;
    for (size_t i = from / page; i < vec.size(); ++i) n += vec[i] & 1;
  }
  ::munmap(m, to);
  return n;
}

// Whether `path` is on tmpfs, where pages cannot leave the cache.
bool OnTmpfs(const std::string& path) {
  struct statfs fsinfo {};
  return ::statfs(path.c_str(), &fsinfo) == 0 && fsinfo.f_type == TMPFS_MAGIC;
}

TEST(EventLogTest, KeepsOnlyTheCacheWindowOfSyncedRecordsInThePageCache) {
  TempDir dir;
  Options o;
  o.cache_window_bytes = 1 << 20;
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  // 12 MiB in batches of 64 KiB records.
  std::vector<std::string> batch(16, std::string(4000, 'r'));
  std::vector<Locator> all;
  for (int i = 0; i < 200; ++i) {
    for (auto& p : batch) p[0] = static_cast<char>('a' + i % 26);
    auto r = MustAppend(*log, batch);
    all.insert(all.end(), r.locators.begin(), r.locators.end());
  }
  const std::string seg = dir.file(1);
  const uint64_t size = fs::file_size(seg);
  ASSERT_GT(size, uint64_t{12} << 20);
  if (OnTmpfs(seg)) GTEST_SKIP() << "tmpfs keeps every page: it has no disk";
  // Everything up to a 4 MiB boundary at least the window behind the end is out of the cache;
  // the window itself is not dropped.
  const uint64_t dropped_to = (size - o.cache_window_bytes) / (4 << 20) * (4 << 20);
  ASSERT_GE(dropped_to, uint64_t{8} << 20);
  EXPECT_EQ(ResidentPages(seg, 0, dropped_to), 0u);
  EXPECT_GT(ResidentPages(seg, size - o.cache_window_bytes, size), 0u);
  // Records out of the cache read back from the disk.
  for (size_t k = 0; k < all.size(); k += 97) {
    EXPECT_EQ(MustRead(*log, all[k]),
              std::string(1, static_cast<char>('a' + k / 16 % 26)) + std::string(3999, 'r'));
  }
}

TEST(EventLogTest, ASegmentLeavesThePageCacheWhenTheNextOneStarts) {
  TempDir dir;
  Options o;
  o.cache_window_bytes = 1 << 20;
  o.segment_bytes = 2 << 20;  // within a drop step of the window: only the roll drops it
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  std::vector<std::string> batch(16, std::string(4000, 's'));
  std::vector<Locator> all;
  while (all.size() < 16 * 40) {
    auto r = MustAppend(*log, batch);
    all.insert(all.end(), r.locators.begin(), r.locators.end());
  }
  const std::string first = dir.file(1);
  ASSERT_TRUE(fs::exists(first));
  ASSERT_GT(all.back() >> kLocatorOffsetBits, all.front() >> kLocatorOffsetBits)
      << "the log should have rolled";
  if (OnTmpfs(first)) GTEST_SKIP() << "tmpfs keeps every page: it has no disk";
  EXPECT_EQ(ResidentPages(first, 0, fs::file_size(first)), 0u);
  EXPECT_EQ(MustRead(*log, all[0]), std::string(4000, 's'));
}

TEST(EventLogTest, ScanStopsAtTheCallbacksError) {
  TempDir dir;
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  MustAppend(*log, {"a", "b", "c"});
  int calls = 0;
  Status s = log->Scan(1, [&](uint64_t seq, Locator, std::string_view) {
    ++calls;
    return seq == 2 ? Internal("stop here") : Status::Ok();
  });
  EXPECT_EQ(s.message(), "stop here");
  EXPECT_EQ(calls, 2);
}

// ---- recovery ----------------------------------------------------------------------------------

// A log of one segment with `n` records; returns the payloads.
std::vector<std::string> WriteRecords(const TempDir& dir, int n, Options o = {}) {
  std::vector<std::string> all;
  auto log = MustOpen(dir.str(), o);
  if (!log) return all;
  for (int i = 0; i < n; ++i) {
    all.push_back(Payload(i, 200));
    MustAppend(*log, {all.back()});
  }
  return all;
}

TEST(EventLogRecoveryTest, TruncatedLastRecordIsDropped) {
  TempDir dir;
  auto all = WriteRecords(dir, 10);
  const uint64_t size = FileSize(dir.file(1));
  fs::resize_file(dir.file(1), size - 5);
  {
    auto log = MustOpen(dir.str());
    ASSERT_TRUE(log);
    EXPECT_EQ(log->recovery().dropped_bytes, format::RecordBytes(all[9].size()) - 5);
    EXPECT_EQ(log->recovery().truncated_file, dir.file(1));
    EXPECT_EQ(log->recovery().truncated_at, size - format::RecordBytes(all[9].size()));
    EXPECT_NE(log->recovery().reason.find("cut short"), std::string::npos);
    EXPECT_EQ(log->recovery().records, 9u);
    EXPECT_EQ(log->next_seq(), 10u);
    all.pop_back();
    EXPECT_EQ(ScanAll(*log), all);
    EXPECT_EQ(MustAppend(*log, {"again"}).first_seq, 10u);
    all.push_back("again");
  }
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovery().dropped_bytes, 0u);
  EXPECT_EQ(ScanAll(*log), all);
}

TEST(EventLogRecoveryTest, GarbageOrZeroTailIsDropped) {
  for (bool zeros : {false, true}) {
    TempDir dir;
    auto all = WriteRecords(dir, 10);
    std::string tail(1000, '\0');
    if (!zeros) {
      std::mt19937 rng(3);
      for (char& c : tail) c = static_cast<char>(rng());
    }
    AppendBytes(dir.file(1), tail);
    auto log = MustOpen(dir.str());
    ASSERT_TRUE(log);
    EXPECT_EQ(log->recovery().dropped_bytes, 1000u) << zeros;
    EXPECT_EQ(ScanAll(*log), all);
    EXPECT_EQ(MustAppend(*log, {"x"}).first_seq, 11u);
  }
}

TEST(EventLogRecoveryTest, FlippedByteInTheLastRecordIsDropped) {
  TempDir dir;
  auto all = WriteRecords(dir, 10);
  const uint64_t size = FileSize(dir.file(1));
  const uint64_t last = size - format::RecordBytes(all[9].size());
  FlipByte(dir.file(1), last + format::kRecordHeaderBytes + 1);
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovery().dropped_bytes, size - last);
  EXPECT_EQ(log->recovery().reason, "checksum mismatch");
  all.pop_back();
  EXPECT_EQ(ScanAll(*log), all);
}

TEST(EventLogRecoveryTest, FlippedByteInAnEarlierSegmentIsAnError) {
  TempDir dir;
  Options o;
  o.segment_bytes = 1024;
  std::vector<Locator> locators;
  {
    auto log = MustOpen(dir.str(), o);
    ASSERT_TRUE(log);
    for (int i = 0; i < 30; ++i)
      locators.push_back(MustAppend(*log, {Payload(i, 200)}).locators[0]);
    ASSERT_GT(LocatorSegment(locators.back()), 2u);
  }
  // The third record of the first segment.
  const uint64_t offset = LocatorOffset(locators[2]);
  FlipByte(dir.file(1), offset + 9);  // in its seq
  auto log = Log::Open(dir.str(), o);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), ErrorCode::kInternal);
  const std::string& m = log.status().message();
  EXPECT_NE(m.find(dir.file(1)), std::string::npos) << m;
  EXPECT_NE(m.find("at offset " + std::to_string(offset)), std::string::npos) << m;
  // Salvage only ever cuts the last segment.
  o.salvage = true;
  EXPECT_FALSE(Log::Open(dir.str(), o).ok());
}

TEST(EventLogRecoveryTest, DamageFollowedByValidRecordsIsAnErrorUnlessSalvaged) {
  TempDir dir;
  auto all = WriteRecords(dir, 10);
  uint64_t offset = format::kSegmentHeaderBytes;
  for (int i = 0; i < 4; ++i) offset += format::RecordBytes(all[i].size());
  FlipByte(dir.file(1), offset + format::kRecordHeaderBytes);  // seq 5's payload
  auto refused = Log::Open(dir.str());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kInternal);
  const std::string& m = refused.status().message();
  EXPECT_NE(m.find("at offset " + std::to_string(offset)), std::string::npos) << m;
  EXPECT_NE(m.find("valid record (seq 6) follows"), std::string::npos) << m;

  Options o;
  o.salvage = true;
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovery().truncated_at, offset);
  all.resize(4);
  EXPECT_EQ(ScanAll(*log), all);
}

TEST(EventLogRecoveryTest, MissingSegmentOrBadHeaderIsAnError) {
  TempDir dir;
  Options o;
  o.segment_bytes = 1024;
  std::vector<uint64_t> firsts;
  {
    auto log = MustOpen(dir.str(), o);
    ASSERT_TRUE(log);
    uint32_t seg = 0;
    for (int i = 0; i < 30; ++i) {
      AppendResult r = MustAppend(*log, {Payload(i, 200)});
      if (LocatorSegment(r.locators[0]) != seg) {
        seg = LocatorSegment(r.locators[0]);
        firsts.push_back(r.first_seq);
      }
    }
  }
  ASSERT_GE(firsts.size(), 4u);
  const std::string second = dir.file(firsts[1]);
  const std::string saved = second + ".saved";
  fs::rename(second, saved);
  auto gap = Log::Open(dir.str(), o);
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.status().message().find("a segment is missing"), std::string::npos)
      << gap.status().message();
  fs::rename(saved, second);
  EXPECT_TRUE(MustOpen(dir.str(), o));

  FlipByte(dir.file(firsts.back()), 12);  // the last segment's ordinal
  auto header = Log::Open(dir.str(), o);
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.status().message().find("segment header checksum mismatch"), std::string::npos)
      << header.status().message();
}

TEST(EventLogRecoveryTest, InterruptedSegmentCreationIsCleanedUp) {
  TempDir dir;
  auto all = WriteRecords(dir, 3);
  const std::string tmp = dir.str() + "/00000000000000000004.seg.tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("SIYU", f);
  std::fclose(f);
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovery().removed_temp_files, 1u);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(ScanAll(*log), all);
}

// ---- concurrency -------------------------------------------------------------------------------

TEST(EventLogConcurrencyTest, ConcurrentAppendsAreDenseContiguousAndExactlyOnce) {
  TempDir dir;
  Options o;
  o.segment_bytes = 64 << 10;
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  constexpr int kThreads = 16;
  constexpr int kBatches = 1000;
  struct Acked {
    uint64_t first_seq;
    std::vector<Locator> locators;
    std::vector<std::string> payloads;
  };
  std::vector<std::vector<Acked>> acked(kThreads);
  // Readers re-read acknowledged records while appends go on.
  std::mutex published_mu;
  std::vector<std::pair<Locator, std::string>> published;
  std::atomic<bool> writing{true};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> reads{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int b = 0; b < kBatches; ++b) {
        Acked a;
        a.payloads.resize(1 + rng() % 8);
        for (size_t i = 0; i < a.payloads.size(); ++i) {
          a.payloads[i] = "t" + std::to_string(t) + "/b" + std::to_string(b) + "/r" +
                          std::to_string(i) + "/" + std::string(rng() % 200, 'p');
        }
        std::vector<std::string_view> views(a.payloads.begin(), a.payloads.end());
        auto r = log->Append(views);
        if (!r.ok()) {
          ++failures;
          continue;
        }
        a.first_seq = r->first_seq;
        a.locators = r->locators;
        if (b % 16 == 0) {
          std::lock_guard lock(published_mu);
          published.emplace_back(a.locators.back(), a.payloads.back());
        }
        acked[t].push_back(std::move(a));
      }
    });
  }
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      while (writing.load()) {
        std::pair<Locator, std::string> pick;
        {
          std::lock_guard lock(published_mu);
          if (!published.empty()) pick = published[rng() % published.size()];
        }
        if (pick.first == 0) {
          std::this_thread::yield();
          continue;
        }
        auto r = log->Read(pick.first);
        if (!r.ok() || *r != pick.second) ++failures;
        ++reads;
        // A scan of the tail concurrently with appends sees only durable, dense records.
        if (reads % 500 == 0) {
          uint64_t from = log->durable_seq() > 100 ? log->durable_seq() - 100 : 1;
          uint64_t want = from;
          Status s = log->Scan(from, [&](uint64_t seq, Locator, std::string_view) {
            return seq == want++ ? Status::Ok() : Internal("gap");
          });
          if (!s.ok()) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  writing = false;
  for (auto& th : readers) th.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_GT(reads.load(), 0u);

  // Every acknowledged record exactly once, at first_seq + i, readable at its locator.
  uint64_t total = 0;
  for (const auto& v : acked) {
    for (const auto& a : v) total += a.payloads.size();
  }
  EXPECT_EQ(log->durable_seq(), total);
  EXPECT_EQ(log->next_seq(), total + 1);
  std::vector<const std::string*> by_seq(total + 1, nullptr);
  for (const auto& v : acked) {
    uint64_t prev = 0;
    for (const auto& a : v) {
      EXPECT_GT(a.first_seq, prev);  // one thread's batches in its order
      prev = a.first_seq;
      for (size_t i = 0; i < a.payloads.size(); ++i) {
        const uint64_t seq = a.first_seq + i;
        ASSERT_LE(seq, total);
        ASSERT_EQ(by_seq[seq], nullptr) << "seq " << seq << " acknowledged twice";
        by_seq[seq] = &a.payloads[i];
      }
      uint64_t seq = 0;
      ASSERT_EQ(MustRead(*log, a.locators.back(), &seq), a.payloads.back());
      ASSERT_EQ(seq, a.first_seq + a.payloads.size() - 1);
    }
  }
  for (uint64_t seq = 1; seq <= total; ++seq) ASSERT_NE(by_seq[seq], nullptr) << seq;
  Stats st = log->stats();
  EXPECT_EQ(st.appends, uint64_t{kThreads} * kBatches);
  EXPECT_EQ(st.records, total);
  EXPECT_LT(st.groups, st.appends);  // group commit: some writes carried several batches
  EXPECT_GT(st.max_group_appends, 1u);
  log.reset();

  log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovery().dropped_bytes, 0u);
  uint64_t seen = 0;
  Status s = log->Scan(1, [&](uint64_t seq, Locator, std::string_view payload) {
    ++seen;
    return payload == *by_seq[seq] ? Status::Ok() : Internal("payload " + std::to_string(seq));
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(seen, total);
}

// The flusher waits for a fuller group only while appends arrive concurrently: appends made one at
// a time are written at once however long the wait, and concurrent appenders share their syncs.
TEST(EventLogConcurrencyTest, OnlyConcurrentAppendsWaitToShareASync) {
  {
    TempDir dir;
    Options o;
    o.group_min = 1000;
    o.group_wait = std::chrono::seconds(60);
    auto log = MustOpen(dir.str(), o);
    ASSERT_TRUE(log);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) MustAppend(*log, {"alone " + std::to_string(i)});
    // Had any of them waited for the group, this would be a minute at least.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
    EXPECT_EQ(log->stats().groups, 20u);
  }
  TempDir dir;
  Options o;
  constexpr int kThreads = 8;
  constexpr int kBatches = 50;
  o.group_min = kThreads;
  o.group_wait = std::chrono::seconds(1);
  auto log = MustOpen(dir.str(), o);
  ASSERT_TRUE(log);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatches; ++i) {
        MustAppend(*log, {"thread " + std::to_string(t) + " batch " + std::to_string(i)});
      }
    });
  }
  for (auto& th : threads) th.join();
  Stats st = log->stats();
  EXPECT_EQ(st.appends, uint64_t{kThreads} * kBatches);
  // Each appender waits for its sync before its next batch, so without the wait a group holds the
  // few batches queued while the last sync ran; with it, groups fill up to the appenders.
  EXPECT_LE(st.groups * 4, st.appends) << st.groups << " groups";
  EXPECT_EQ(st.max_group_appends, uint64_t{kThreads});
}

// ---- failures ----------------------------------------------------------------------------------

// A write past RLIMIT_FSIZE fails with EFBIG: a real I/O error from the kernel, no test hooks.
TEST(EventLogFailureTest, AWriteFailureRefusesLaterAppends) {
  TempDir dir;
  std::vector<std::string> acked;
  std::vector<Locator> locators;
  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  for (int i = 0; i < 5; ++i) {
    acked.push_back(Payload(i, 200));
    locators.push_back(MustAppend(*log, {acked.back()}).locators[0]);
  }
  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = log->bytes() + 3000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  Status failure;
  std::string big(1000, 'z');
  for (int i = 0; i < 10 && failure.ok(); ++i) {
    std::vector<std::string_view> one = {big};
    auto r = log->Append(one);
    if (r.ok()) {
      acked.push_back(big);
      locators.push_back(r->locators[0]);
    } else {
      failure = r.status();
    }
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(failure.ok());
  EXPECT_EQ(failure.code(), ErrorCode::kStoreUnavailable);
  EXPECT_NE(failure.message().find("refuses appends"), std::string::npos) << failure.message();
  EXPECT_NE(failure.message().find("File too large"), std::string::npos) << failure.message();
  // Refused for good, even now that writes would succeed.
  std::vector<std::string_view> one = {"later"};
  auto later = log->Append(one);
  ASSERT_FALSE(later.ok());
  EXPECT_EQ(later.status().message(), failure.message());
  EXPECT_FALSE(log->health().ok());
  for (size_t i = 0; i < acked.size(); ++i) EXPECT_EQ(MustRead(*log, locators[i]), acked[i]);
  log.reset();

  log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  EXPECT_GT(log->recovery().dropped_bytes, 0u);  // the partial write
  EXPECT_EQ(ScanAll(*log), acked);
  EXPECT_EQ(MustAppend(*log, {"after restart"}).first_seq, acked.size() + 1);
}

// The child appends from 8 threads and reports each acknowledged batch on a pipe; it is killed
// with SIGKILL mid-run. Every acknowledged record must then be in the log, intact.
TEST(EventLogCrashTest, AcknowledgedRecordsSurviveSigkill) {
  TempDir dir;
  struct Ack {
    uint64_t first_seq;
    uint32_t thread;
    uint32_t batch;
    uint32_t count;
    uint32_t pad;
  };
  auto payload = [](uint32_t t, uint32_t b, uint32_t i) {
    return "t" + std::to_string(t) + "/b" + std::to_string(b) + "/r" + std::to_string(i) + "/" +
           std::string((t * 31 + b * 7 + i * 13) % 400, static_cast<char>('a' + (b + i) % 26));
  };
  auto count_of = [](uint32_t t, uint32_t b) { return 1 + (t + b) % 20; };
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    Options o;
    o.segment_bytes = 256 << 10;
    auto log = Log::Open(dir.str(), o);
    if (!log.ok()) ::_exit(2);
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (uint32_t b = 0;; ++b) {
          std::vector<std::string> batch;
          for (uint32_t i = 0; i < count_of(t, b); ++i) batch.push_back(payload(t, b, i));
          std::vector<std::string_view> views(batch.begin(), batch.end());
          auto r = (*log)->Append(views);
          if (!r.ok()) ::_exit(3);
          Ack a{r->first_seq, t, b, static_cast<uint32_t>(batch.size()), 0};
          if (::write(fds[1], &a, sizeof a) != sizeof a) ::_exit(4);  // atomic: < PIPE_BUF
        }
      });
    }
    for (auto& th : threads) th.join();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::vector<Ack> acks;
  auto read_acks = [&](int timeout_ms) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    Ack buf[256];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) return false;
    EXPECT_EQ(n % static_cast<ssize_t>(sizeof(Ack)), 0);
    acks.insert(acks.end(), buf, buf + n / sizeof(Ack));
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (acks.size() < 3000 && std::chrono::steady_clock::now() < deadline) {
    if (!read_acks(1000)) break;
  }
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  EXPECT_TRUE(WIFSIGNALED(wstatus)) << "the child exited early with " << WEXITSTATUS(wstatus);
  while (read_acks(0)) {
  }
  ::close(fds[0]);
  ASSERT_GE(acks.size(), 3000u);

  auto log = MustOpen(dir.str());
  ASSERT_TRUE(log);
  std::vector<std::string> by_seq(1);
  ASSERT_TRUE(log->Scan(1,
                        [&](uint64_t seq, Locator, std::string_view p) {
                          by_seq.emplace_back(p);
                          return Status::Ok();
                        })
                  .ok());
  uint64_t highest = 0;
  for (const Ack& a : acks) {
    ASSERT_EQ(a.count, count_of(a.thread, a.batch));
    for (uint32_t i = 0; i < a.count; ++i) {
      const uint64_t seq = a.first_seq + i;
      ASSERT_LT(seq, by_seq.size()) << "acknowledged seq " << seq << " is missing";
      ASSERT_EQ(by_seq[seq], payload(a.thread, a.batch, i)) << "seq " << seq;
    }
    highest = std::max<uint64_t>(highest, a.first_seq + a.count - 1);
  }
  EXPECT_GE(log->durable_seq(), highest);
  // The log goes on from where it stopped.
  const uint64_t next = log->next_seq();
  EXPECT_EQ(next, log->durable_seq() + 1);
  EXPECT_EQ(MustAppend(*log, {"after the crash"}).first_seq, next);
}

}  // namespace
}  // namespace siyu::eventlog
