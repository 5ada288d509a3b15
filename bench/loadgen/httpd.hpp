// The load generator's httpd mode: a keep-alive HTTP/1.1 backend for the rpc mode.
#pragma once

#include "options.hpp"

namespace bench {

// Serves o.url's port until killed.
int run_httpd(const Options& o);

}  // namespace bench
