#pragma once
// Small helpers shared by the index tests.

#include "tests/common/temp_dir.h"

namespace annal::index::testing {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("annal-index") {}
};

}  // namespace annal::index::testing
