#include "genmodels/clip/lexicon.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "genmodels/clip/captions.h"
#include "genmodels/core/error.h"

namespace gm::clip {
namespace {

// A WordNet lemma as caption text: underscores as spaces, lower case, a sense marker such as
// "(a)" dropped.
std::string lemma_text(std::string w) {
  if (const auto p = w.find('('); p != std::string::npos) w.erase(p);
  std::replace(w.begin(), w.end(), '_', ' ');
  for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return w;
}

struct Synset {
  std::vector<std::string> lemmas;
  std::vector<std::string> hypernyms, hyponyms;  // offsets
};

std::ifstream open_or_throw(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw Error("model.lexicon: cannot read " + path +
                " (install WordNet: apt-get install wordnet-base, then "
                "--set model.lexicon=/usr/share/wordnet)");
  return in;
}

}  // namespace

const std::vector<std::string>& default_lexicon_roots() {
  static const std::vector<std::string> r = {"clothing#1", "footwear#2", "bag#1", "bag#4"};
  return r;
}

std::vector<LexiconEntry> load_wordnet_lexicon(const std::string& dir,
                                               const std::vector<std::string>& roots) {
  // Roots: "lemma#k" is the k-th offset on the lemma's line of index.noun (its k-th sense).
  for (const auto& r : roots) {
    const auto hash = r.find('#');
    if (hash == std::string::npos || hash == 0 || hash + 1 == r.size() ||
        r.find_first_not_of("0123456789", hash + 1) != std::string::npos)
      throw Error("model.lexicon_roots: '" + r + "' is not LEMMA#SENSE (e.g. clothing#1)");
  }
  std::vector<std::string> root_offsets;
  std::unordered_set<std::string> found;
  {
    const std::string path = dir + "/index.noun";
    std::ifstream in = open_or_throw(path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == ' ') continue;  // the license header
      std::istringstream ls(line);
      std::string lemma, pos;
      int64_t synset_cnt = 0, p_cnt = 0;
      ls >> lemma >> pos >> synset_cnt >> p_cnt;
      for (const auto& r : roots) {
        const auto hash = r.find('#');
        if (r.substr(0, hash) != lemma) continue;
        std::istringstream rest(line);
        std::vector<std::string> f;
        for (std::string w; rest >> w;) f.push_back(w);
        const size_t first = 4 + static_cast<size_t>(p_cnt) + 2;  // after sense_cnt, tagsense_cnt
        const int64_t k = std::stoll(r.substr(hash + 1));
        if (k < 1 || k > synset_cnt || first + static_cast<size_t>(synset_cnt) > f.size())
          throw Error("model.lexicon_roots: " + r + ": '" + lemma + "' has " +
                      std::to_string(synset_cnt) + " noun senses in " + path);
        root_offsets.push_back(f[first + static_cast<size_t>(k) - 1]);
        found.insert(r);
      }
    }
  }
  for (const auto& r : roots)
    if (!found.count(r))
      throw Error("model.lexicon_roots: " + r.substr(0, r.find('#')) + " is not a noun in " + dir +
                  "/index.noun");

  std::unordered_map<std::string, Synset> synsets;
  std::vector<std::string> order;
  {
    const std::string path = dir + "/data.noun";
    std::ifstream in = open_or_throw(path);
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty() || line[0] == ' ') continue;
      const auto bar = line.find(" | ");
      std::istringstream ls(line.substr(0, bar));
      std::vector<std::string> f;
      for (std::string w; ls >> w;) f.push_back(w);
      auto bad = [&] {
        return Error(path + ":" + std::to_string(number) + ": not a WordNet data line");
      };
      if (f.size() < 6) throw bad();
      Synset s;
      const size_t words = std::stoul(f[3], nullptr, 16);
      size_t i = 4;
      for (size_t w = 0; w < words; ++w, i += 2) {
        if (i >= f.size()) throw bad();
        s.lemmas.push_back(lemma_text(f[i]));
      }
      if (i >= f.size()) throw bad();
      const size_t pointers = std::stoul(f[i++]);
      for (size_t p = 0; p < pointers; ++p, i += 4) {
        if (i + 3 >= f.size()) throw bad();
        if (f[i + 2] != "n") continue;
        if (f[i] == "@" || f[i] == "@i") s.hypernyms.push_back(f[i + 1]);
        if (f[i] == "~" || f[i] == "~i") s.hyponyms.push_back(f[i + 1]);
      }
      order.push_back(f[0]);
      synsets.emplace(f[0], std::move(s));
    }
  }
  std::unordered_set<std::string> in_closure;
  std::vector<std::string> stack = root_offsets;
  while (!stack.empty()) {
    const std::string o = stack.back();
    stack.pop_back();
    const auto it = synsets.find(o);
    if (it == synsets.end() || !in_closure.insert(o).second) continue;
    for (const auto& h : it->second.hyponyms) stack.push_back(h);
  }
  std::vector<LexiconEntry> out;
  for (const auto& o : order) {
    if (!in_closure.count(o)) continue;
    const Synset& s = synsets.at(o);
    LexiconEntry e;
    e.terms = s.lemmas;
    if (!s.hypernyms.empty())
      if (const auto h = synsets.find(s.hypernyms.front()); h != synsets.end())
        e.broader = h->second.lemmas.front();
    if (e.terms.size() > 1 || (!e.terms.empty() && !e.broader.empty())) out.push_back(std::move(e));
  }
  return out;
}

std::pair<std::string, std::string> lexicon_pair(const LexiconEntry& e, std::mt19937_64& rng) {
  const auto& templates = caption_templates(Wording::Train);
  const std::string& tmpl =
      templates[std::uniform_int_distribution<size_t>(0, templates.size() - 1)(rng)];
  const size_t n = e.terms.size();
  const size_t i = std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  // The anchor: one of the other terms, or the broader term.
  const size_t anchors = n - 1 + (e.broader.empty() ? 0 : 1);
  const size_t j = std::uniform_int_distribution<size_t>(0, anchors - 1)(rng);
  const std::string& anchor = j < n - 1 ? e.terms[j < i ? j : j + 1] : e.broader;
  return {fill(tmpl, with_article(e.terms[i])), fill(tmpl, with_article(anchor))};
}

}  // namespace gm::clip
