// Keras weights in HDF5 (libhdf5's C API): the legacy layout (Keras 2, tf.keras, Keras 3's .h5)
// and Keras 3's model.weights.h5.
//
// libhdf5 1.10 can crash on a corrupt file (a bit flip in a variable-length string's global heap
// reference segfaults inside H5HG_read), so a file is read in a child process: the child walks
// every group, string attribute and dataset into a plain snapshot and sends it through a pipe;
// a child that dies, fails or takes too long makes a one-line Error, never a crash of graft.
#include <hdf5.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ops/empty.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "graft/core/error.h"
#include "graft/keras/internal.h"

// Under AddressSanitizer (scripts/test.sh --sanitize, scripts/fuzz.sh) the reader child reports
// libhdf5's own memory errors on corrupt files and exits, like any crash of the child; it must not
// run the fuzzer's crash handler, which would count libhdf5's bugs, contained here, as graft's.
#if defined(__SANITIZE_ADDRESS__)
#define GRAFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRAFT_ASAN 1
#endif
#endif
#ifdef GRAFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace graft::keras::internal {
namespace {

struct Dataset {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// What graft needs of a Keras HDF5 file: its groups, their string attributes, its datasets.
struct Snapshot {
  std::set<std::string> groups;                                  // "" is the root
  std::map<std::string, std::vector<std::string>> attributes;    // "group\x1fname" -> strings
  std::map<std::string, Dataset> datasets;                       // "group/name" paths
};

std::string attribute_key(const std::string& group, const std::string& name) { return group + '\x1f' + name; }

// ---- In the child: libhdf5 walks the file. Failures are plain strings (no exceptions across
// the C callbacks).

class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

struct Walk {
  Snapshot* snap;
  uint64_t budget;  // bytes of dataset payload still allowed
  std::string error;
};

bool read_string_attribute(hid_t obj, const char* name, std::vector<std::string>& out, std::string& error) {
  Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!a.ok()) return (error = std::string("cannot open attribute '") + name + "'"), false;
  Handle type(H5Aget_type(a.get()), H5Tclose);
  Handle space(H5Aget_space(a.get()), H5Sclose);
  if (!type.ok() || !space.ok()) return (error = std::string("cannot read attribute '") + name + "'"), false;
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > (1 << 24)) return (error = std::string("attribute '") + name + "' has a bad size"), false;
  if (H5Tget_class(type.get()) != H5T_STRING) return true;  // numeric: an empty list is stored so
  if (H5Tis_variable_str(type.get()) > 0) {
    std::vector<char*> buf(static_cast<size_t>(n), nullptr);
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    if (H5Aread(a.get(), mem.get(), buf.data()) < 0) {
      return (error = std::string("cannot read attribute '") + name + "'"), false;
    }
    for (char* s : buf) {
      out.emplace_back(s ? s : "");
      if (s) H5free_memory(s);
    }
    return true;
  }
  const size_t size = H5Tget_size(type.get());
  if (size == 0 || size > (1 << 26) || static_cast<uint64_t>(n) * size > (uint64_t{1} << 28)) {
    return (error = std::string("attribute '") + name + "' has a bad size"), false;
  }
  std::string buf(static_cast<size_t>(n) * size, '\0');
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), size);
  H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
  if (H5Aread(a.get(), mem.get(), buf.data()) < 0) {
    return (error = std::string("cannot read attribute '") + name + "'"), false;
  }
  for (hssize_t i = 0; i < n; ++i) {
    std::string s = buf.substr(static_cast<size_t>(i) * size, size);
    s.resize(std::min(s.size(), s.find('\0')));
    out.push_back(std::move(s));
  }
  return true;
}

herr_t on_attribute(hid_t obj, const char* name, const H5A_info_t*, void* data) {
  auto* w = static_cast<std::pair<Walk*, std::string>*>(data);
  std::vector<std::string> strings;
  if (!read_string_attribute(obj, name, strings, w->first->error)) return -1;
  w->first->snap->attributes[attribute_key(w->second, name)] = std::move(strings);
  return 0;
}

bool read_dataset(hid_t file, const std::string& path, Walk& w) {
  Handle d(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) return (w.error = "cannot open dataset '" + path + "'"), false;
  // Raw data kept in other files (external storage, a virtual dataset's sources) would make
  // graft read paths the file names, not the one the user gave.
  Handle dcpl(H5Dget_create_plist(d.get()), H5Pclose);
  if (!dcpl.ok()) return (w.error = "cannot read the storage of dataset '" + path + "'"), false;
  if (H5Pget_external_count(dcpl.get()) != 0) {
    return (w.error = "dataset '" + path + "' keeps its data in external files; graft reads weights only from the file it is given (re-save the model)"), false;
  }
  if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL) {
    return (w.error = "dataset '" + path + "' is a virtual dataset mapping other files; graft reads weights only from the file it is given (re-save the model)"), false;
  }
  Handle space(H5Dget_space(d.get()), H5Sclose);
  const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0 || rank > 8) return (w.error = "dataset '" + path + "' has a bad shape"), false;
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  Dataset ds;
  uint64_t count = 1;
  for (hsize_t v : dims) {
    if (v > (hsize_t{1} << 32)) return (w.error = "dataset '" + path + "' has a bad shape"), false;
    count *= v;
    if (count * 4 > w.budget) {
      return (w.error = "dataset '" + path + "' is larger than the file could hold"), false;
    }
    ds.shape.push_back(static_cast<int64_t>(v));
  }
  w.budget -= count * 4;
  Handle type(H5Dget_type(d.get()), H5Tclose);
  const H5T_class_t cls = type.ok() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
  // Keras 3 marks bfloat16 weights with a "dtype" attribute; their 2-byte elements are the top
  // half of a float32's bits, read as the file stores them.
  std::vector<std::string> dtype;
  std::string ignored;
  const bool bfloat16 = H5Aexists(d.get(), "dtype") > 0 && read_string_attribute(d.get(), "dtype", dtype, ignored) &&
                        dtype.size() == 1 && dtype[0] == "bfloat16" && H5Tget_size(type.get()) == 2;
  if (!bfloat16 && cls != H5T_FLOAT && cls != H5T_INTEGER) return true;  // not a weight: leave it out
  ds.data.resize(count);
  if (bfloat16) {
    std::vector<uint16_t> bits(count);
    if (count > 0 && H5Dread(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data()) < 0) {
      return (w.error = "cannot read dataset '" + path + "'"), false;
    }
    for (uint64_t i = 0; i < count; ++i) {
      const uint32_t f = static_cast<uint32_t>(bits[i]) << 16;
      std::memcpy(&ds.data[i], &f, 4);
    }
  } else if (count > 0 && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds.data.data()) < 0) {
    return (w.error = "cannot read dataset '" + path + "'"), false;
  }
  w.snap->datasets[path] = std::move(ds);
  return true;
}

// Links to other files (external links) or of kinds libhdf5 resolves by user code: refused,
// whether or not a dataset behind them would be read.
herr_t on_link(hid_t, const char* name, const H5L_info_t* info, void* data) {
  if (info->type == H5L_TYPE_HARD || info->type == H5L_TYPE_SOFT) return 0;
  Walk& w = *static_cast<Walk*>(data);
  w.error = std::string(info->type == H5L_TYPE_EXTERNAL ? "external link '" : "user-defined link '") + name +
            "' points outside the file; graft reads weights only from the file it is given (re-save the model)";
  return -1;
}

herr_t on_object(hid_t root, const char* name, const H5O_info_t* info, void* data) {
  Walk& w = *static_cast<Walk*>(data);
  const std::string path = std::strcmp(name, ".") == 0 ? "" : name;
  if (info->type == H5O_TYPE_GROUP) {
    w.snap->groups.insert(path);
    Handle g(H5Oopen(root, path.empty() ? "." : path.c_str(), H5P_DEFAULT), H5Oclose);
    if (!g.ok()) return (w.error = "cannot open group '" + path + "'"), -1;
    std::pair<Walk*, std::string> ctx{&w, path};
    hsize_t idx = 0;
    if (H5Aiterate2(g.get(), H5_INDEX_NAME, H5_ITER_NATIVE, &idx, on_attribute, &ctx) < 0) {
      if (w.error.empty()) w.error = "cannot list the attributes of '" + path + "'";
      return -1;
    }
  } else if (info->type == H5O_TYPE_DATASET) {
    if (!read_dataset(root, path, w)) return -1;
  }
  return 0;
}

// Reads the file into `snap`; "" on success, else what went wrong.
std::string walk_file(const std::string& path, const std::string& image, Snapshot& snap) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t fid = -1;
  uint64_t size = image.size();
  if (image.empty()) {
    fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fid >= 0) {
      hsize_t s = 0;
      H5Fget_filesize(fid, &s);
      size = s;
    }
  } else {
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    if (fapl.ok() && H5Pset_fapl_core(fapl.get(), 1 << 16, 0) >= 0 &&
        H5Pset_file_image(fapl.get(), const_cast<char*>(image.data()), image.size()) >= 0) {
      fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
    }
  }
  if (fid < 0) return "not a readable HDF5 file (truncated or corrupt?)";
  Handle file(fid, H5Fclose);
  // Keras writes weights uncompressed: the payload cannot exceed the file (with room for
  // compressed datasets written by other tools).
  Walk w{&snap, size * 8 + (uint64_t{1} << 20), ""};
  if (H5Lvisit(file.get(), H5_INDEX_NAME, H5_ITER_NATIVE, on_link, &w) < 0) {
    return w.error.empty() ? "cannot walk the file's links (truncated or corrupt file?)" : w.error;
  }
  if (H5Ovisit(file.get(), H5_INDEX_NAME, H5_ITER_NATIVE, on_object, &w) < 0) {
    if (w.error.find("re-save the model") != std::string::npos) return w.error;
    return (w.error.empty() ? "cannot walk the file" : w.error) + " (truncated or corrupt file?)";
  }
  return "";
}

// ---- The pipe between child and parent: length-prefixed records.

void put(std::string& out, const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
void put_u64(std::string& out, uint64_t v) { put(out, &v, 8); }
void put_str(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

std::string serialize(const Snapshot& s) {
  std::string out;
  put_u64(out, s.groups.size());
  for (const auto& g : s.groups) put_str(out, g);
  put_u64(out, s.attributes.size());
  for (const auto& [k, v] : s.attributes) {
    put_str(out, k);
    put_u64(out, v.size());
    for (const auto& x : v) put_str(out, x);
  }
  put_u64(out, s.datasets.size());
  for (const auto& [k, d] : s.datasets) {
    put_str(out, k);
    put_u64(out, d.shape.size());
    for (int64_t v : d.shape) put_u64(out, static_cast<uint64_t>(v));
    put_u64(out, d.data.size());
    put(out, d.data.data(), d.data.size() * sizeof(float));
  }
  return out;
}

class Reader {
 public:
  explicit Reader(const std::string& b) : b_(b) {}
  uint64_t u64() {
    need(8);
    uint64_t v;
    std::memcpy(&v, b_.data() + at_, 8);
    at_ += 8;
    return v;
  }
  std::string str() {
    const uint64_t n = u64();
    need(n);
    std::string s = b_.substr(at_, n);
    at_ += n;
    return s;
  }
  void bytes(void* p, uint64_t n) {
    need(n);
    if (n) std::memcpy(p, b_.data() + at_, n);
    at_ += n;
  }

 private:
  void need(uint64_t n) {
    if (n > b_.size() - at_) throw Error("the HDF5 reader's reply is truncated", ErrorKind::kInternal);
  }
  const std::string& b_;
  size_t at_ = 0;
};

Snapshot deserialize(const std::string& bytes) {
  Reader r(bytes);
  Snapshot s;
  for (uint64_t i = 0, n = r.u64(); i < n; ++i) s.groups.insert(r.str());
  for (uint64_t i = 0, n = r.u64(); i < n; ++i) {
    std::string k = r.str();
    std::vector<std::string> v(r.u64());
    for (auto& x : v) x = r.str();
    s.attributes[k] = std::move(v);
  }
  for (uint64_t i = 0, n = r.u64(); i < n; ++i) {
    std::string k = r.str();
    Dataset d;
    d.shape.resize(r.u64());
    for (auto& v : d.shape) v = static_cast<int64_t>(r.u64());
    d.data.resize(r.u64());
    r.bytes(d.data.data(), d.data.size() * sizeof(float));
    s.datasets[k] = std::move(d);
  }
  return s;
}

bool write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// How long the reader may take: libhdf5 1.10 can also loop forever on a corrupt file (a bad
// global heap reference in a variable-length string attribute spins in H5HG_read; found by
// fuzzing), so the limit grows with the file's size instead of covering the largest file: 10 s,
// plus a second per 16 MiB (a 1 GiB file: 74 s; reading takes ~1 s per 100 MiB here).
int64_t timeout_seconds(uint64_t bytes) { return 10 + static_cast<int64_t>(bytes >> 24); }

// Reads the HDF5 file (or in-memory image) in a child process.
Snapshot read_snapshot(const std::string& origin, const std::string& image) {
  int fds[2];
  if (::pipe(fds) != 0) throw Error("cannot create a pipe to read " + origin, ErrorKind::kInternal);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw Error("cannot start the HDF5 reader for " + origin, ErrorKind::kInternal);
  }
  if (pid == 0) {  // the child: read, send, and leave without running any destructor
    // Dies with graft: a graft killed while libhdf5 spins on a corrupt file must not leave the
    // reader spinning on (fuzzing left such orphans behind).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(4);  // graft died before the line above
#ifdef GRAFT_ASAN
    __sanitizer_set_death_callback([] { ::_exit(5); });
#endif
    ::close(fds[0]);
    Snapshot snap;
    const std::string error = walk_file(origin, image, snap);
    std::string reply(1, error.empty() ? 'O' : 'E');
    reply += error.empty() ? serialize(snap) : error;
    ::_exit(write_all(fds[1], reply) ? 0 : 3);
  }
  ::close(fds[1]);
  std::string reply;
  char buf[1 << 16];
  std::error_code ec;
  const uint64_t bytes = image.empty() ? std::filesystem::file_size(origin, ec) : image.size();
  const int64_t limit = timeout_seconds(ec ? 0 : bytes);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(limit);
  bool timed_out = false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    throw Error(origin + ": libhdf5 was still reading the file after " + std::to_string(limit) +
                " s (corrupt file?)");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || reply.empty()) {
    throw Error(origin + ": libhdf5 failed reading the file (" +
                (WIFSIGNALED(status) ? std::string("crashed: ") + strsignal(WTERMSIG(status)) : "exit status " +
                 std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1)) +
                "); the file is corrupt or truncated");
  }
  if (reply[0] == 'E') throw Error(origin + ": " + reply.substr(1));
  return deserialize(reply.substr(1));
}

// ---- In the parent: Keras' layouts over a snapshot.

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + (s.size() == 1 ? ",)" : ")");
}

std::string join(const std::string& group, const std::string& name) {
  return group.empty() ? name : group + "/" + name;
}

class File {
 public:
  File(const std::string& origin, const std::string& image) : origin_(origin), snap_(read_snapshot(origin, image)) {}

  const std::string& origin() const { return origin_; }
  bool has_group(const std::string& path) const { return snap_.groups.count(path) > 0; }
  bool has_dataset(const std::string& path) const { return snap_.datasets.count(path) > 0; }

  // A string-list attribute; Keras splits long ones into name0, name1, … Empty if absent.
  std::vector<std::string> strings(const std::string& group, const std::string& name) const {
    auto it = snap_.attributes.find(attribute_key(group, name));
    if (it != snap_.attributes.end()) return it->second;
    std::vector<std::string> out;
    for (int i = 0;; ++i) {
      auto part = snap_.attributes.find(attribute_key(group, name + std::to_string(i)));
      if (part == snap_.attributes.end()) break;
      out.insert(out.end(), part->second.begin(), part->second.end());
    }
    return out;
  }

  at::Tensor dataset(const std::string& path, const std::vector<int64_t>& expected, const std::string& what) const {
    auto it = snap_.datasets.find(path);
    if (it == snap_.datasets.end()) throw Error(origin_ + ": has no dataset '" + path + "' (" + what + ")");
    const Dataset& d = it->second;
    if (d.shape != expected) {
      throw Error(what + " ('" + path + "') has shape " + shape_text(d.shape) + " in the file, the config needs " +
                  shape_text(expected) + " (do the config and the weights file belong together?)");
    }
    at::Tensor t = at::empty(expected, at::kFloat);
    if (!d.data.empty()) std::memcpy(t.data_ptr<float>(), d.data.data(), d.data.size() * sizeof(float));
    return t;
  }

 private:
  std::string origin_;
  Snapshot snap_;
};

std::string last_layer_component(const std::string& weight_name) {
  const size_t slash = weight_name.rfind('/');
  if (slash == std::string::npos || slash == 0) return "";
  const size_t prev = weight_name.rfind('/', slash - 1);
  const size_t from = prev == std::string::npos ? 0 : prev + 1;
  return weight_name.substr(from, slash - from);
}

class LegacyStore : public WeightStore {
 public:
  LegacyStore(std::shared_ptr<const File> file, std::string root) : file_(std::move(file)), root_(std::move(root)) {}

  std::vector<at::Tensor> layer_weights(const LayerPath& p,
                                        const std::vector<std::vector<int64_t>>& shapes) override {
    const std::string group = join(root_, p.names.at(0));
    if (!file_->has_group(group)) {
      throw Error(file_->origin() + " has no weights group '" + group +
                  "' for it (was the file saved from this model?)");
    }
    std::vector<std::string> names = file_->strings(group, "weight_names");
    if (p.names.size() > 1) {  // a layer of a nested model: its weights carry its name
      std::vector<std::string> mine;
      for (const auto& n : names) {
        if (last_layer_component(n) == p.names.back()) mine.push_back(n);
      }
      names = mine;
    }
    if (names.size() != shapes.size()) {
      throw Error(file_->origin() + " has " + std::to_string(names.size()) + " weights for it, the config implies " +
                  std::to_string(shapes.size()) + " (do the config and the weights file belong together?)");
    }
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < names.size(); ++i) {
      out.push_back(file_->dataset(join(group, names[i]), shapes[i], "weight " + std::to_string(i)));
    }
    return out;
  }

 private:
  std::shared_ptr<const File> file_;
  std::string root_;
};

class Keras3Store : public WeightStore {
 public:
  explicit Keras3Store(std::shared_ptr<const File> file) : file_(std::move(file)) {}

  std::vector<at::Tensor> layer_weights(const LayerPath& p,
                                        const std::vector<std::vector<int64_t>>& shapes) override {
    // Keras 3: layers/<snake_case class>[_i] at each level. tf.keras 2.13-2.15 wrote the same
    // archive with _layer_checkpoint_dependencies/<layer name>.
    std::string keras3, by_name;
    for (const auto& k : p.keys) keras3 = join(keras3, k);
    for (const auto& n : p.names) by_name = join(by_name, "_layer_checkpoint_dependencies/" + n);
    std::string group;
    for (const std::string& candidate : {keras3, by_name}) {
      if (file_->has_group(join(candidate, "vars"))) {
        group = join(candidate, "vars");
        break;
      }
    }
    if (group.empty()) {
      throw Error(file_->origin() + " has no weights group '" + join(keras3, "vars") + "' (nor '" +
                  join(by_name, "vars") + "') for it");
    }
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < shapes.size(); ++i) {
      out.push_back(file_->dataset(join(group, std::to_string(i)), shapes[i], "weight " + std::to_string(i)));
    }
    if (file_->has_dataset(join(group, std::to_string(shapes.size())))) {
      throw Error(file_->origin() + " has more weights in '" + group + "' than the config implies");
    }
    return out;
  }

 private:
  std::shared_ptr<const File> file_;
};

}  // namespace

struct Hdf5File::Impl {
  std::shared_ptr<const File> file;
};

Hdf5File::Hdf5File(const std::string& origin, const std::string& image)
    : impl_(std::make_shared<Impl>(Impl{std::make_shared<File>(origin, image)})) {}

std::string Hdf5File::root_string(const std::string& name) const {
  const auto v = impl_->file->strings("", name);
  return v.empty() ? "" : v[0];
}

bool Hdf5File::has_group(const std::string& path) const { return impl_->file->has_group(path); }

std::unique_ptr<WeightStore> Hdf5File::legacy_store(const std::string& group) const {
  return std::make_unique<LegacyStore>(impl_->file, group);
}

std::unique_ptr<WeightStore> Hdf5File::keras3_store() const { return std::make_unique<Keras3Store>(impl_->file); }

}  // namespace graft::keras::internal
