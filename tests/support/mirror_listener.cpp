// Stops the last mirror pair (support/mirror.hpp) when the test run ends, while everything it
// uses (libpq, pqxx, doctest) is still alive: left to static destruction, its databases were
// dropped through a library already torn down (a crash at exit).
#include <doctest/doctest.h>

#include "support/mirror.hpp"

namespace {

struct MirrorCleanup : doctest::IReporter {
  explicit MirrorCleanup(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override { mpf::test::mirror_slot().reset(); }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("mirror_cleanup", 1, MirrorCleanup);
