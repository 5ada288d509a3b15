// The load generator's parent process: forks the children, runs the barriers, merges and prints.
#pragma once

#include "options.hpp"

namespace bench {

// Runs the fanout, idle or rpc mode over o.procs children; the exit status.
int run_parent(const Options& o);

}  // namespace bench
