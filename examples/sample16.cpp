// A downstream program on the installed library: loads a trained run and writes 16 samples as
// one grid PNG (with the generation parameters in its text chunks).
//   sample16 RUN OUT.png [SEED]
#include <genmodels/family/model.h>
#include <genmodels/models/run.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: sample16 RUN OUT.png [SEED]\n";
    return 2;
  }
  try {
    gm::SampleArgs args;
    args.run = argv[1];
    args.n = 16;
    args.seed = argc > 3 ? std::stoull(argv[3]) : 0;
    args.quiet = true;
    const gm::SampleResult samples = gm::sample_run(args);  // EMA weights, the run's sampler
    gm::write_sample_image(argv[2], samples, 4);
    std::cout << "wrote " << samples.x.size(0) << " samples " << samples.x.sizes() << " to "
              << argv[2] << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "sample16: " << e.what() << "\n";
    return 2;
  }
}
