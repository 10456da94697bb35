#include "domain/identity/identity_bench.h"

int main(int argc, char** argv) { return siyu::identity::BenchMain(argc, argv); }
