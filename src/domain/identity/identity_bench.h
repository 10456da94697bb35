// The identity benchmark (`siyu bench identity`, also the `identity_bench` executable): builds a
// graph of --people people and --ids ids, measures resolve latency, link throughput, rebuild time
// and memory per id, and resolves a sample through SQLite as the peer, checking equal answers.
#pragma once

namespace siyu::identity {

// Google Benchmark style arguments (--people, --ids, …); returns the exit code.
int BenchMain(int argc, char** argv);

}  // namespace siyu::identity
