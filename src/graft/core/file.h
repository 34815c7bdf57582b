// File I/O helpers: whole-file reads with clear errors, and atomic writes (temp file + rename),
// so a crash or a full disk never leaves a half-written model behind.
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <string>

namespace graft {

// A read-only memory map of a whole file (empty files map to size 0). Throws Error naming the
// path if it is missing or unreadable.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// The whole file as bytes. Throws Error naming the path if it is missing or unreadable.
std::string read_file(const std::string& path);

// Writes `path` atomically: `write` fills a stream backed by a temporary file in the same
// directory, which is flushed, fsync'ed and renamed over `path` only if everything succeeded.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace graft
