// The WordNet lexicon of clip/lexicon.h: the hyponym closure of the root senses, clean
// definitions, training pairs, and one-line errors; the real database when it is installed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

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
  ASSERT_EQ(entries.size(), 4u);  // clothing, coat, parka, t-shirt; not the other sense, not car
  EXPECT_EQ(entries[0].terms, (std::vector<std::string>{"clothing"}));
  EXPECT_EQ(entries[0].broader, "");
  EXPECT_EQ(entries[1].terms, (std::vector<std::string>{"coat", "jacket"}));
  EXPECT_EQ(entries[1].definition, "an outer garment");  // aside and example dropped
  EXPECT_EQ(entries[2].terms, (std::vector<std::string>{"parka", "anorak"}));
  EXPECT_EQ(entries[2].broader, "coat");
  EXPECT_EQ(entries[2].definition, "a kind of heavy jacket");
  EXPECT_EQ(entries[3].terms, (std::vector<std::string>{"t-shirt"}));
  // A sense is picked by its number; a subtree alone.
  const auto second = load_wordnet_lexicon(dir, {"clothing#2"});
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].definition, "the second sense of clothing");
  EXPECT_EQ(load_wordnet_lexicon(dir, {"coat#1"}).size(), 2u);

  // A training pair: the term in a training caption template, the definition led by the broader
  // term.
  std::mt19937_64 rng(1);
  for (int i = 0; i < 20; ++i) {
    const auto [text, definition] = lexicon_pair(entries[2], rng);
    EXPECT_TRUE(text.find("a parka") != std::string::npos ||
                text.find("an anorak") != std::string::npos)
        << text;
    const auto& templates = caption_templates(Wording::Train);
    EXPECT_TRUE(std::any_of(templates.begin(), templates.end(), [&](const std::string& t) {
      return text.rfind(t.substr(0, t.find("{}")), 0) == 0;
    })) << text;
    EXPECT_EQ(definition, "a coat: a kind of heavy jacket");
  }
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
