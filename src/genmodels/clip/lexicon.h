// A lexicon for CLIP's text encoder, read from WordNet (Miller 1995; Fellbaum 1998), Debian's
// wordnet-base (/usr/share/wordnet). A text encoder trained only on captions made from a few
// synonyms per class has never seen a word such as "parka" or "sundress"; real CLIP text encoders
// know such words from the web's text. Here they come from the thesaurus: each lexicon term in a
// caption template ("a photo of a parka") is pulled toward the same template around one of its
// synonyms or its broader term ("a photo of a jacket"), whose words the image captions ground.
// No image is ever paired with a lexicon term.
//
// The entries are the hyponym closure of a few root senses (default: clothing, footwear, bags):
// every noun synset below them with its lemmas (underscores as spaces) and its first hypernym's
// first lemma; an entry needs something to be pulled toward (two lemmas, or a broader term).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace gm::clip {

struct LexiconEntry {
  std::vector<std::string> terms;  ///< "parka", "windbreaker", ... (lower case)
  std::string broader;             ///< the first hypernym's first lemma: "jacket"
};

/// The default roots: WordNet 3.0's clothing#1, footwear#2 (covering for the feet), bag#1 (a
/// flexible container) and bag#4 (handbag).
const std::vector<std::string>& default_lexicon_roots();

/// Reads `dir`/index.noun and `dir`/data.noun (WordNet's database format, wndb(5WN)) and returns
/// the entries of every noun synset in the hyponym closure of `roots` ("lemma#sense", e.g.
/// "clothing#1"), roots included, in data.noun order. Errors name the file, the line or the root.
std::vector<LexiconEntry> load_wordnet_lexicon(const std::string& dir,
                                               const std::vector<std::string>& roots);

/// One training pair of an entry: a random term in a random training caption template, and the
/// same template around another of its terms or its broader term (uniformly among them).
std::pair<std::string, std::string> lexicon_pair(const LexiconEntry& e, std::mt19937_64& rng);

}  // namespace gm::clip
