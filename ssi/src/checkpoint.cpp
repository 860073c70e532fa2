#include "ssi/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "base/unique_fd.hpp"

namespace ssi::machine {

namespace {

constexpr std::uint64_t kRecord = 8 + kCheckpointPage;  // u64 offset, then the page
constexpr std::string_view kMagic = "ssi-checkpoint";

Error corrupt(const std::string& dir, std::string what) {
  return make_error(Errc::kProtocol, fmt::format("checkpoint {} refused: {}", dir, what));
}

struct Sha256 {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), EVP_MD_CTX_free};
  Sha256() { EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr); }
  void add(const void* p, std::size_t n) { EVP_DigestUpdate(ctx.get(), p, n); }
  std::string hex() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), d, &len);
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", d[i]);
    return out;
  }
};

// One output file: written through a buffer, hashed on the way.
class OutFile {
 public:
  static Result<OutFile> create(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Error::from_errno(fmt::format("cannot create {}", path));
    return OutFile(path, fd);
  }
  Result<void> write(const void* p, std::size_t n) {
    hash_.add(p, n);
    size_ += n;
    const auto* b = static_cast<const std::uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
    return buf_.size() >= (1u << 20) ? drain() : ok();
  }
  Result<void> finish() {
    SSI_TRY(drain());
    if (::fsync(fd_.get()) != 0) return Error::from_errno(fmt::format("fsync {}", path_));
    return ok();
  }
  std::uint64_t size() const { return size_; }
  std::string sha256() { return hash_.hex(); }

 private:
  OutFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  Result<void> drain() {
    std::size_t done = 0;
    while (done < buf_.size()) {
      ssize_t n = ::write(fd_.get(), buf_.data() + done, buf_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Error::from_errno(fmt::format("write {}", path_));
      done += static_cast<std::size_t>(n);
    }
    buf_.clear();
    return ok();
  }
  std::string path_;
  UniqueFd fd_;
  std::vector<std::uint8_t> buf_;
  Sha256 hash_;
  std::uint64_t size_ = 0;
};

bool all_zero(const std::uint8_t* p) {
  static const std::uint8_t zero[kCheckpointPage] = {};
  return std::memcmp(p, zero, kCheckpointPage) == 0;
}

Result<std::vector<std::uint8_t>> read_whole(const std::string& path, std::uint64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::from_errno(fmt::format("cannot read {}", path));
  std::vector<std::uint8_t> out;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.insert(out.end(), buf, buf + in.gcount());
    if (out.size() > limit) return make_error(Errc::kProtocol, fmt::format("{} is too large", path));
  }
  return out;
}

// The manifest's one-word kernel kinds.
constexpr std::pair<KernelKind, std::string_view> kKinds[] = {
    {KernelKind::kSsiElf, "ssi-elf"}, {KernelKind::kMultiboot, "multiboot"}, {KernelKind::kLinux, "linux"}};

std::string_view kind_word(KernelKind k) {
  for (const auto& [kind, word] : kKinds)
    if (kind == k) return word;
  return "?";
}

std::optional<KernelKind> kind_named(std::string_view n) {
  for (const auto& [kind, word] : kKinds)
    if (word == n) return kind;
  return std::nullopt;
}

}  // namespace

Result<CheckpointStats> write_checkpoint(const std::string& dir, const CheckpointConfig& config,
                                         std::span<const std::uint8_t> ram,
                                         const std::vector<std::pair<std::uint32_t, vcpu::CpuState>>& cpus,
                                         std::span<const std::uint8_t> devices) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Error::from_errno(fmt::format("cannot create {}", dir));
  ::unlink((dir + "/manifest").c_str());  // until the new one is complete, no checkpoint
  CheckpointStats stats;
  std::string files;
  auto add = [&](OutFile& f, const std::string& name) -> Result<void> {
    SSI_TRY(f.finish());
    stats.bytes_written += f.size();
    files += fmt::format("file {} {} {}\n", name, f.size(), f.sha256());
    return ok();
  };
  {
    SSI_ASSIGN_OR_RETURN(OutFile f, OutFile::create(dir + "/ram.pages"));
    for (std::uint64_t off = 0; off + kCheckpointPage <= ram.size(); off += kCheckpointPage) {
      if (all_zero(ram.data() + off)) continue;  // never written, or zeroed: restores as zero
      SSI_TRY(f.write(&off, sizeof off));
      SSI_TRY(f.write(ram.data() + off, kCheckpointPage));
      ++stats.ram_pages_written;
    }
    SSI_TRY(add(f, "ram.pages"));
  }
  for (const auto& [index, state] : cpus) {
    std::string name = fmt::format("cpu{}.state", index);
    SSI_ASSIGN_OR_RETURN(OutFile f, OutFile::create(dir + "/" + name));
    auto bytes = vcpu::serialize(state);
    SSI_TRY(f.write(bytes.data(), bytes.size()));
    SSI_TRY(add(f, name));
  }
  {
    SSI_ASSIGN_OR_RETURN(OutFile f, OutFile::create(dir + "/devices.state"));
    SSI_TRY(f.write(devices.data(), devices.size()));
    SSI_TRY(add(f, "devices.state"));
  }
  std::string manifest =
      fmt::format("{} {}\nvcpus {}\nmem_bytes {}\nram_bytes {}\nkernel {}\nnodes {}\n{}{}end\n", kMagic,
                  kCheckpointVersion, config.vcpus, config.mem_bytes, ram.size(),
                  kind_word(config.kernel), config.nodes,
                  config.tsc_khz ? fmt::format("tsc_khz {}\n", config.tsc_khz) : "", files);
  {
    SSI_ASSIGN_OR_RETURN(OutFile f, OutFile::create(dir + "/manifest.tmp"));
    SSI_TRY(f.write(manifest.data(), manifest.size()));
    SSI_TRY(f.finish());
    stats.bytes_written += f.size();
  }
  if (::rename((dir + "/manifest.tmp").c_str(), (dir + "/manifest").c_str()) != 0)
    return Error::from_errno(fmt::format("cannot write {}/manifest", dir));
  return stats;
}

namespace {

struct ManifestFile {
  std::uint64_t size = 0;
  std::string sha256;
};

// Streams `path`, checking its size and SHA-256; `each` sees every block.
template <typename Each>
Result<void> check_file(const Checkpoint& c, const std::string& name, const ManifestFile& m, Each each) {
  std::string path = c.dir + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return corrupt(c.dir, fmt::format("{} is missing", name));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != m.size)
    return corrupt(c.dir, fmt::format("{} has {} bytes, the manifest says {}", name,
                                      static_cast<std::uint64_t>(st.st_size), m.size));
  Sha256 h;
  std::vector<std::uint8_t> buf(kRecord * 256);
  std::uint64_t at = 0;
  while (at < m.size) {  // whole blocks: a RAM block is whole records
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), m.size - at));
    std::size_t got = 0;
    while (got < want) {
      ssize_t n = ::read(fd.get(), buf.data() + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return corrupt(c.dir, fmt::format("{} could not be read", name));
      got += static_cast<std::size_t>(n);
    }
    h.add(buf.data(), want);
    SSI_TRY(each(std::span<const std::uint8_t>(buf.data(), want), at));
    at += want;
  }
  if (h.hex() != m.sha256) return corrupt(c.dir, fmt::format("{} fails its SHA-256", name));
  return ok();
}

}  // namespace

Result<Checkpoint> open_checkpoint(const std::string& dir, bool check_ram) {
  Checkpoint c;
  c.dir = dir;
  auto text = read_whole(dir + "/manifest", 1 << 20);
  if (!text.ok()) return corrupt(dir, "no readable manifest");
  std::istringstream in(std::string(text->begin(), text->end()));
  std::string magic;
  std::uint32_t version = 0;
  if (!(in >> magic >> version) || magic != kMagic) return corrupt(dir, "the manifest is not an ssi checkpoint's");
  if (version != kCheckpointVersion)
    return corrupt(dir, fmt::format("format version {}, this ssi reads version {}", version, kCheckpointVersion));
  std::map<std::string, ManifestFile> files;
  bool ended = false, have_vcpus = false, have_mem = false, have_ram = false, have_kernel = false;
  std::string key;
  while (in >> key) {
    bool good = true;
    if (key == "end") { ended = true; break; }
    if (key == "vcpus") good = have_vcpus = static_cast<bool>(in >> c.config.vcpus);
    else if (key == "mem_bytes") good = have_mem = static_cast<bool>(in >> c.config.mem_bytes);
    else if (key == "ram_bytes") good = have_ram = static_cast<bool>(in >> c.ram_bytes);
    else if (key == "nodes") good = static_cast<bool>(in >> c.config.nodes) && c.config.nodes >= 1;
    else if (key == "tsc_khz") good = static_cast<bool>(in >> c.config.tsc_khz) && c.config.tsc_khz > 0;
    else if (key == "kernel") {
      std::string name;
      auto k = (in >> name) ? kind_named(name) : std::nullopt;
      good = have_kernel = k.has_value();
      if (k) c.config.kernel = *k;
    } else if (key == "file") {
      std::string name;
      ManifestFile f;
      good = static_cast<bool>(in >> name >> f.size >> f.sha256) && f.sha256.size() == 64 &&
             files.emplace(name, f).second;
    } else {
      return corrupt(dir, fmt::format("unknown manifest key '{}'", key));
    }
    if (!good) return corrupt(dir, fmt::format("bad manifest line '{}'", key));
  }
  if (!ended) return corrupt(dir, "the manifest is truncated (no 'end')");
  if (!have_vcpus || !have_mem || !have_ram || !have_kernel || c.config.vcpus == 0 ||
      c.config.vcpus > 256 || c.ram_bytes == 0 || c.ram_bytes % kCheckpointPage != 0)
    return corrupt(dir, "the manifest's machine config is incomplete or out of range");
  std::size_t expected = c.config.vcpus + 2;
  if (files.size() != expected || !files.contains("ram.pages") || !files.contains("devices.state"))
    return corrupt(dir, fmt::format("the manifest lists {} files, a {}-vCPU checkpoint has {}",
                                    files.size(), c.config.vcpus, expected));
  auto whole = [](std::vector<std::uint8_t>& out) {
    return [&out](std::span<const std::uint8_t> b, std::uint64_t) -> Result<void> {
      out.insert(out.end(), b.begin(), b.end());
      return ok();
    };
  };
  for (std::uint32_t i = 0; i < c.config.vcpus; ++i) {
    std::string name = fmt::format("cpu{}.state", i);
    auto it = files.find(name);
    if (it == files.end()) return corrupt(dir, fmt::format("{} is not in the manifest", name));
    if (it->second.size > (16u << 20)) return corrupt(dir, fmt::format("{} is too large", name));
    std::vector<std::uint8_t> bytes;
    SSI_TRY(check_file(c, name, it->second, whole(bytes)));
    auto s = vcpu::deserialize(bytes);
    if (!s.ok()) return corrupt(dir, fmt::format("{}: {}", name, s.error().message));
    c.cpus.push_back(std::move(*s));
  }
  if (files["devices.state"].size > (1u << 20)) return corrupt(dir, "devices.state is too large");
  SSI_TRY(check_file(c, "devices.state", files["devices.state"], whole(c.devices)));
  const ManifestFile& ram = files["ram.pages"];
  if (ram.size % kRecord != 0) return corrupt(dir, "ram.pages is not whole page records");
  c.ram_pages = ram.size / kRecord;
  if (!check_ram) return c;
  std::uint64_t last = 0;
  bool first = true;
  SSI_TRY(check_file(c, "ram.pages", ram, [&](std::span<const std::uint8_t> b, std::uint64_t at) -> Result<void> {
    // Blocks are whole records (the buffer is a multiple of kRecord).
    for (std::uint64_t r = 0; r + kRecord <= b.size(); r += kRecord) {
      std::uint64_t off;
      std::memcpy(&off, b.data() + r, sizeof off);
      if (off % kCheckpointPage != 0 || off >= c.ram_bytes || (!first && off <= last))
        return corrupt(dir, fmt::format("ram.pages record {} has a bad page offset", (at + r) / kRecord));
      last = off;
      first = false;
    }
    return ok();
  }));
  return c;
}

std::uint64_t saved_tsc(const vcpu::CpuState& s) {
  for (const auto& m : s.msrs)
    if (m.index == 0x10) return m.data;
  return 0;
}

std::int64_t tsc_epoch_for(std::uint64_t tsc, std::uint64_t tsc_khz, std::int64_t now_ns) {
  if (tsc_khz == 0) return now_ns;
  auto ns = static_cast<std::int64_t>(static_cast<unsigned __int128>(tsc) * 1'000'000 / tsc_khz);
  return now_ns - ns;
}

Result<void> load_checkpoint_ram(const Checkpoint& c, std::span<std::uint8_t> ram) {
  if (ram.size() != c.ram_bytes)
    return corrupt(c.dir, fmt::format("it holds {} bytes of RAM, the machine has {}", c.ram_bytes, ram.size()));
  std::string path = c.dir + "/ram.pages";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(fmt::format("cannot read {}", path));
  std::vector<std::uint8_t> buf(kRecord * 256);
  for (std::uint64_t left = c.ram_pages; left > 0;) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, 256) * kRecord);
    std::size_t got = 0;
    while (got < want) {
      ssize_t n = ::read(fd.get(), buf.data() + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return corrupt(c.dir, "ram.pages changed after it was checked");
      got += static_cast<std::size_t>(n);
    }
    for (std::size_t r = 0; r < want; r += kRecord) {
      std::uint64_t off;
      std::memcpy(&off, buf.data() + r, sizeof off);
      if (off >= ram.size()) return corrupt(c.dir, "ram.pages changed after it was checked");
      std::memcpy(ram.data() + off, buf.data() + r + 8, kCheckpointPage);
    }
    left -= want / kRecord;
  }
  return ok();
}

}  // namespace ssi::machine
