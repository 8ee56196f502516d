// C++'s operator new and delete as liblarder.so exports them (larder-c/src/cxx.rs): every form
// allocates and frees, aligned forms align, and a failed new does what C++ requires: calls the
// new-handler until it gives up, then throws std::bad_alloc (nothrow forms: return nullptr).
// Usage: cxx_new [LIBRARY]: with LIBRARY, the operators must be that library's definitions.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

static int failures = 0;
#define EXPECT(cond)                                                        \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                           \
    }                                                                       \
  } while (0)

// A size no allocator can serve, hidden from the compiler so that it emits the call.
static volatile std::size_t impossible = SIZE_MAX / 4;

static int handler_calls = 0;
// Gives up on the third call, as a handler with nothing left to free does.
static void counting_handler() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}

struct alignas(64) Line64 { char bytes[64]; };
struct alignas(4096) Page { char bytes[100]; };

static bool aligned(const void *p, std::size_t align) {
  return reinterpret_cast<std::uintptr_t>(p) % align == 0;
}

// Which object defines `symbol` in this process.
static const char *definer(const char *symbol) {
  Dl_info info;
  void *address = dlsym(RTLD_DEFAULT, symbol);
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "?";
  return info.dli_fname;
}

int main(int argc, char **argv) {
  if (argc > 1) {
    for (const char *symbol : {"_Znwm", "_Znam", "_ZdlPv", "_ZdlPvm", "_ZnwmSt11align_val_t",
                               "_ZnwmRKSt9nothrow_t", "_ZdaPvSt11align_val_t"}) {
      const char *library = definer(symbol);
      if (std::strstr(library, argv[1]) == nullptr) {
        std::fprintf(stderr, "%s is defined by %s, not %s\n", symbol, library, argv[1]);
        failures++;
      }
    }
  }

  // Every form, many sizes, written through and freed with the matching delete.
  std::vector<char *> arrays;
  for (std::size_t size = 0; size < 70000; size = size * 3 / 2 + 1) {
    char *array = new char[size];
    std::memset(array, 0x5a, size);
    arrays.push_back(array);
    void *single = ::operator new(size);
    std::memset(single, 0xa5, size);
    ::operator delete(single, size);
    void *quiet = ::operator new(size, std::nothrow);
    EXPECT(quiet != nullptr);
    ::operator delete(quiet, std::nothrow);
  }
  for (char *array : arrays) delete[] array;

  for (int i = 0; i < 1000; i++) {
    Line64 *line = new Line64;
    EXPECT(aligned(line, 64));
    delete line;
    Page *pages = new Page[3];
    EXPECT(aligned(pages, 4096));
    delete[] pages;
    void *raw = ::operator new(200, std::align_val_t(256), std::nothrow);
    EXPECT(raw != nullptr && aligned(raw, 256));
    ::operator delete(raw, 200, std::align_val_t(256));
  }

  // A failed throwing new: std::bad_alloc, for the plain, array and aligned forms.
  int thrown = 0;
  try { (void)::operator new(impossible); } catch (const std::bad_alloc &) { thrown++; }
  try { (void)new char[impossible]; } catch (const std::bad_alloc &) { thrown++; }
  try { (void)::operator new(impossible, std::align_val_t(64)); } catch (const std::bad_alloc &) { thrown++; }
  EXPECT(thrown == 3);

  // The nothrow forms return nullptr.
  EXPECT(::operator new(impossible, std::nothrow) == nullptr);
  EXPECT(new (std::nothrow) char[impossible] == nullptr);
  EXPECT(::operator new(impossible, std::align_val_t(128), std::nothrow) == nullptr);

  // The new-handler is called until it gives up, then new throws.
  std::set_new_handler(counting_handler);
  bool caught = false;
  try { (void)::operator new(impossible); } catch (const std::bad_alloc &) { caught = true; }
  EXPECT(caught);
  EXPECT(handler_calls == 3);
  handler_calls = 0;
  std::set_new_handler(counting_handler);
  EXPECT(::operator new(impossible, std::nothrow) == nullptr);
  EXPECT(handler_calls == 3);

  if (failures != 0) return 1;
  std::printf("operator new and delete: every form allocates and aligns; failures throw or return null\n");
  return 0;
}
