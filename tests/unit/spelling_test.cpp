// Suggestions for mistyped names: which typos count as one.
#include <gtest/gtest.h>

#include "core/spelling.hpp"

using sluice::one_typo_apart;
using sluice::one_typo_from;

TEST(Spelling, OneTypoIsALetterWrongMissingExtraOrTwoNeighboursSwapped) {
  EXPECT_TRUE(one_typo_apart("burts", "burst"));   // swapped
  EXPECT_TRUE(one_typo_apart("brust", "burst"));   // swapped
  EXPECT_TRUE(one_typo_apart("lst", "list"));      // missing
  EXPECT_TRUE(one_typo_apart("listt", "list"));    // extra
  EXPECT_TRUE(one_typo_apart("statz", "stats"));   // wrong
  EXPECT_TRUE(one_typo_apart("xdd", "add"));       // wrong, first letter
  EXPECT_TRUE(one_typo_apart("ad", "add"));        // missing, last letter
  EXPECT_FALSE(one_typo_apart("list", "list"));    // the same: no typo
  EXPECT_FALSE(one_typo_apart("lsti", "list"));    // two
  EXPECT_FALSE(one_typo_apart("del", "deny"));     // two
  EXPECT_FALSE(one_typo_apart("rm", "run"));       // two
  EXPECT_FALSE(one_typo_apart("", "ab"));
  EXPECT_TRUE(one_typo_apart("", "a"));
}

TEST(Spelling, TheFirstNameOneTypoAwayIsSuggested) {
  EXPECT_EQ(one_typo_from("servce", {"attach", "service", "stats"}), "service");
  EXPECT_EQ(one_typo_from("frobnicate", {"add", "set", "del", "list"}), "");
}

TEST(Spelling, ASuggestionEndsTheErrorAndNoneAddsNothing) {
  EXPECT_EQ(sluice::did_you_mean("burst"), "; did you mean 'burst'?");
  EXPECT_EQ(sluice::did_you_mean(""), "");
}
