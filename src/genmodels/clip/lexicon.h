// A lexicon for CLIP's text encoder: dictionary entries (the words of a concept and its
// definition) read from WordNet (Miller 1995; Fellbaum 1998), Debian's wordnet-base
// (/usr/share/wordnet). A text encoder trained only on captions made from a few synonyms per
// class has never seen a word such as "parka" or "sundress"; real CLIP text encoders know such
// words from the web's text. Here the text encoder learns them from definitions instead: a
// text-only contrastive term pairs a term in a caption template ("a photo of a parka") with its
// definition led by its broader term ("a jacket: a kind of heavy jacket"), whose words the image
// captions do ground. No image is ever paired with a lexicon term.
//
// The entries are the hyponym closure of a few root senses (default: clothing, footwear, bags):
// every noun synset below them, each with its lemmas (underscores as spaces), its first
// hypernym's first lemma and its definition (the gloss without its quoted examples).
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
  std::string definition;          ///< "a kind of heavy jacket"
};

/// The default roots: WordNet 3.0's clothing#1, footwear#2 (covering for the feet), bag#1 (a
/// flexible container) and bag#4 (handbag).
const std::vector<std::string>& default_lexicon_roots();

/// Reads `dir`/index.noun and `dir`/data.noun (WordNet's database format, wndb(5WN)) and returns
/// the entries of every noun synset in the hyponym closure of `roots` ("lemma#sense", e.g.
/// "clothing#1"), roots included, in data.noun order. Errors name the file, the line or the root.
std::vector<LexiconEntry> load_wordnet_lexicon(const std::string& dir,
                                               const std::vector<std::string>& roots);

/// One training pair of an entry: a random term in a random caption template, and its definition
/// led by its broader term ("a jacket: a kind of heavy jacket").
std::pair<std::string, std::string> lexicon_pair(const LexiconEntry& e, std::mt19937_64& rng);

}  // namespace gm::clip
