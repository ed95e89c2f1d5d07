// Quoting a command line for a shell and splitting it back gives the same words.
#include "genmodels/core/command_line.h"

#include <gtest/gtest.h>

#include "genmodels/core/error.h"

TEST(CommandLine, QuoteThenSplitIsTheIdentity) {
  const std::vector<std::string> words = {"genmodels",
                                          "sample",
                                          "runs/a b",
                                          "--prompt",
                                          "a photo of a 'sneaker'",
                                          "--set",
                                          "sample.guidance=3",
                                          "",
                                          "tab\there",
                                          "back\\slash \"q\"",
                                          "ünïcode"};
  std::string line;
  for (const auto& w : words) line += (line.empty() ? "" : " ") + gm::shell_quote(w);
  EXPECT_EQ(gm::split_command_line(line, "test"), words) << line;
  EXPECT_EQ(gm::shell_quote("runs/fmnist"), "runs/fmnist");  // safe words stay readable
  EXPECT_EQ(gm::shell_quote("it's"), "'it'\\''s'");
}

TEST(CommandLine, SplitsHandWrittenQuotingAndRejectsBrokenLines) {
  EXPECT_EQ(gm::split_command_line("  a  \"b c\"\td\\ e 'f\"g' \"h\\\"i\"", "x"),
            (std::vector<std::string>{"a", "b c", "d e", "f\"g", "h\"i"}));
  EXPECT_THROW(gm::split_command_line("a 'b", "x"), gm::Error);
  EXPECT_THROW(gm::split_command_line("a \"b", "x"), gm::Error);
  EXPECT_THROW(gm::split_command_line("a b\\", "x"), gm::Error);
}
