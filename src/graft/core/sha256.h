// SHA-256 (FIPS 180-4), for recording which source models a cut or a hybrid came from.
#pragma once

#include <cstddef>
#include <string>

namespace graft {

// Lower-case hex digest of `size` bytes.
std::string sha256_hex(const char* data, size_t size);
// Digest of a file's contents (memory-mapped); Error if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace graft
