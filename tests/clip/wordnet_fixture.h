// A miniature WordNet database (index.noun + data.noun in the wndb(5WN) format) for lexicon
// tests: clothing#1 > coat (jacket) > parka (anorak), clothing#1 > T-shirt, a second sense of
// clothing, and an unrelated car.
#pragma once
#include <string>

#include "genmodels/core/atomic_file.h"

namespace gm::test {

inline void write_mini_wordnet(const std::string& dir) {
  make_dirs(dir);
  write_file_atomic(dir + "/index.noun",
                    "  1 This software and database is being provided (a license header line)\n"
                    "car n 1 0 1 0 00000006  \n"
                    "clothing n 2 1 ~ 2 1 00000001 00000005  \n"
                    "coat n 1 2 @ ~ 1 0 00000002  \n");
  write_file_atomic(
      dir + "/data.noun",
      "  1 This software and database is being provided (a license header line)\n"
      "00000001 06 n 01 clothing 0 002 ~ 00000002 n 0000 ~ 00000004 n 0000 | a covering "
      "designed to be worn on a person's body  \n"
      "00000002 06 n 02 coat 0 jacket 0 002 @ 00000001 n 0000 ~ 00000003 n 0000 | an outer "
      "garment (usually with sleeves); \"he wore a coat\"  \n"
      "00000003 06 n 02 parka 0 anorak 0 001 @ 00000002 n 0000 | a kind of heavy jacket "
      "(`windcheater' is a British term)  \n"
      "00000004 06 n 01 T-shirt 0 001 @ 00000001 n 0000 | a close-fitting pullover shirt  \n"
      "00000005 06 n 02 clothing 0 wear 0 000 | the second sense of clothing  \n"
      "00000006 06 n 01 car 0 000 | a motor vehicle with four wheels  \n");
}

}  // namespace gm::test
