#include "server/http_server.h"

#include <gtest/gtest.h>

namespace siyu::server {
namespace {

// Thread counts left at 0 are sized to the machine; counts given are kept.
TEST(ServerThreadsTest, SizedToTheCoresUnlessGiven) {
  ServerOptions o;
  EXPECT_EQ(ServerThreads(o, 2), std::make_pair(1, 16));
  EXPECT_EQ(ServerThreads(o, 1), std::make_pair(1, 8));
  EXPECT_EQ(ServerThreads(o, 0), std::make_pair(1, 8));  // unknown: taken as one core
  EXPECT_EQ(ServerThreads(o, 4), std::make_pair(2, 32));
  EXPECT_EQ(ServerThreads(o, 32), std::make_pair(16, 64));
  o.io_threads = 3;
  o.worker_threads = 100;
  EXPECT_EQ(ServerThreads(o, 2), std::make_pair(3, 100));
}

}  // namespace
}  // namespace siyu::server
