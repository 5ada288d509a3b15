// Static files stay inside static_dir. libwebsockets 4.1.6 serves an LWSMPRO_FILE mount by
// opening origin + "/" + the request path (and, for a directory, that plus the mount's `def`
// index) and follows symbolic links on the way, so a link inside static_dir could serve any file
// the process can read. confine() wraps the context's file-open operation: every file lws opens
// for a request is checked by the real path of the descriptor it actually got (no window between
// the check and the open), and one outside the real static_dir is closed again; lws then answers
// as for a missing file (our 404). Links that resolve inside static_dir keep working.
#pragma once

#include <filesystem>
#include <string_view>

struct lws_context;

namespace wsbridge::static_files {

// Installs the check on `context`'s file operations (call once, right after creating it, before
// it serves anything). Throws std::runtime_error when `root` has no real path.
void confine(lws_context* context, const std::filesystem::path& root);

// Whether the canonical path `real` is `root_real` itself or lies under it (both canonical).
bool inside(std::string_view root_real, std::string_view real);

}  // namespace wsbridge::static_files
