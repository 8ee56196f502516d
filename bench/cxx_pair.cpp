/* A C++ loop of new+delete pairs, as a C++ program meets the allocator: `new char[n]` /
 * `delete[]` (unsized) and `::operator new(n)` / sized `::operator delete(p, n)`.
 * Usage: cxx_pair SIZE PAIRS [sized] */
#include <cstdlib>
#include <cstring>
#include <new>

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  std::size_t size = std::strtoul(argv[1], nullptr, 10);
  long pairs = std::strtol(argv[2], nullptr, 10);
  bool sized = argc > 3 && std::strcmp(argv[3], "sized") == 0;
  for (long i = 0; i < pairs; i++) {
    if (sized) {
      void *volatile block = ::operator new(size);
      ::operator delete(block, size);
    } else {
      char *volatile block = new char[size];
      delete[] block;
    }
  }
  return 0;
}
