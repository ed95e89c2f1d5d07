// The WordNet lexicon of clip/lexicon.h: the hyponym closure of the root senses, clean
// definitions, training pairs, and one-line errors; the real database when it is installed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include "clip/wordnet_fixture.h"
#include "genmodels/clip/captions.h"
#include "genmodels/clip/lexicon.h"
#include "genmodels/core/error.h"
#include "test_util.h"

using namespace gm::clip;

TEST(Lexicon, HyponymClosureOfTheRootSense) {
  gm::test::TempDir tmp;
  const std::string dir = tmp.file("wn");
  gm::test::write_mini_wordnet(dir);
  const auto entries = load_wordnet_lexicon(dir, {"clothing#1"});
  // coat, parka, t-shirt; not the other sense, not car, and not clothing itself (one term and
  // nothing broader: nothing to pull it toward).
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].terms, (std::vector<std::string>{"coat", "jacket"}));
  EXPECT_EQ(entries[0].broader, "clothing");
  EXPECT_EQ(entries[1].terms, (std::vector<std::string>{"parka", "anorak"}));
  EXPECT_EQ(entries[1].broader, "coat");
  EXPECT_EQ(entries[2].terms, (std::vector<std::string>{"t-shirt"}));
  // A sense is picked by its number; a subtree alone.
  const auto second = load_wordnet_lexicon(dir, {"clothing#2"});
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].terms, (std::vector<std::string>{"clothing", "wear"}));
  EXPECT_EQ(load_wordnet_lexicon(dir, {"coat#1"}).size(), 2u);

  // A training pair: a term in a training caption template, and the same template around another
  // term or the broader term; every anchor comes up.
  std::mt19937_64 rng(1);
  const auto& templates = caption_templates(Wording::Train);
  std::set<std::string> anchors;
  for (int i = 0; i < 60; ++i) {
    const auto [text, anchor] = lexicon_pair(entries[1], rng);
    std::string prefix;  // the longest template prefix both start with ("{}" has none)
    bool found = false;
    for (const auto& t : templates) {
      const std::string p = t.substr(0, t.find("{}"));
      if (text.rfind(p, 0) == 0 && anchor.rfind(p, 0) == 0 && (!found || p.size() > prefix.size()))
        prefix = p, found = true;
    }
    ASSERT_TRUE(found) << text << " / " << anchor;
    const std::string term = text.substr(prefix.size()), a = anchor.substr(prefix.size());
    EXPECT_TRUE(term.rfind("a parka", 0) == 0 || term.rfind("an anorak", 0) == 0) << text;
    EXPECT_NE(term, a) << text;
    anchors.insert(a.substr(0, a.find(' ', a.find(' ') + 1)));
  }
  EXPECT_EQ(anchors, (std::set<std::string>{"a coat", "a parka", "an anorak"}));
}

TEST(Lexicon, BadRootsAndMissingDatabaseAreOneLineErrors) {
  gm::test::TempDir tmp;
  const std::string dir = tmp.file("wn");
  gm::test::write_mini_wordnet(dir);
  auto error = [&](const std::string& d, const std::string& root) {
    return gm::test::error_of([&] { load_wordnet_lexicon(d, {root}); });
  };
  EXPECT_NE(error(dir, "clothing").find("LEMMA#SENSE"), std::string::npos);
  EXPECT_NE(error(dir, "clothing#x").find("LEMMA#SENSE"), std::string::npos);
  EXPECT_NE(error(dir, "clothing#3").find("has 2 noun senses"), std::string::npos);
  EXPECT_NE(error(dir, "hat#1").find("hat is not a noun in " + dir), std::string::npos);
  const std::string missing = error(tmp.file("nowhere"), "clothing#1");
  EXPECT_NE(missing.find(tmp.file("nowhere") + "/index.noun"), std::string::npos) << missing;
  EXPECT_NE(missing.find("apt-get install wordnet-base"), std::string::npos) << missing;
  for (const std::string& msg : {error(dir, "clothing#3"), missing})
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// Debian's wordnet-base (scripts/setup installs it): the default roots hold the garments whose
// names no training caption uses.
TEST(Lexicon, DebianWordNetHasTheGarments) {
  const std::string dir = "/usr/share/wordnet";
  if (!std::filesystem::exists(dir + "/data.noun")) GTEST_SKIP() << "wordnet-base not installed";
  const auto entries = load_wordnet_lexicon(dir, default_lexicon_roots());
  EXPECT_GT(entries.size(), 500u);
  auto find = [&](const std::string& term) -> const LexiconEntry* {
    for (const auto& e : entries)
      if (std::find(e.terms.begin(), e.terms.end(), term) != e.terms.end()) return &e;
    return nullptr;
  };
  for (const char* term : {"parka", "sundress", "sweatshirt", "tennis shoe", "tote", "blouse"})
    EXPECT_NE(find(term), nullptr) << term;
  ASSERT_NE(find("parka"), nullptr);
  EXPECT_EQ(find("parka")->broader, "jacket");
  EXPECT_EQ(find("car"), nullptr);
}
