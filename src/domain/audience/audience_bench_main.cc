#include "domain/audience/audience_bench.h"

int main(int argc, char** argv) { return siyu::audience::bench::BenchMain(argc, argv); }
