/* expect: clean */
/* C++ operators of the program's own that call C's malloc and free, beside check mode's: this
 * program replaces operator new[] and the scalar operator delete only, as a library that links
 * the C++ runtime statically keeps a private copy of them (LLVM's libLLVM.so: its operator new
 * calls malloc, and a program's delete then reaches the preloaded one). new[] from here with
 * check mode's delete[], and check mode's new with delete from here, are each one family's
 * pair, not a mismatch: nothing is reported. */
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

/* The mismatch is this file's point: the compiler sees malloc under new[] and free under
 * delete. The operators stay functions, as in a library's copy: inlined into main, their
 * malloc and free would be main's own calls. */
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

static unsigned long deletes;

__attribute__((noinline)) void *operator new[](std::size_t size) {
    void *p = std::malloc(size ? size : 1);
    if (!p) throw std::bad_alloc();
    return p;
}

/* Counting after the free keeps it a call (not a jump that would leave this frame off the
 * stack, where check mode looks for the operator's name). */
__attribute__((noinline)) void operator delete(void *p) noexcept {
    std::free(p);
    __atomic_add_fetch(&deletes, 1, __ATOMIC_RELAXED);
}
__attribute__((noinline)) void operator delete(void *p, std::size_t) noexcept {
    std::free(p);
    __atomic_add_fetch(&deletes, 1, __ATOMIC_RELAXED);
}

int main() {
    unsigned long sum = 0;
    for (int round = 0; round < 1000; round++) {
        int *array = new int[16 + round % 100];
        array[0] = round;
        sum += array[0];
        delete[] array; /* check mode's delete[], of a block from the private new[] */
        std::string *text = new std::string(40 + round % 300, 'x');
        sum += text->size();
        delete text; /* the private delete, of a block from check mode's new */
        std::vector<int> v(round % 64 + 1, round);
        sum += v.back();
    }
    std::printf("sum %lu, %lu deletes\n", sum, deletes);
    return 0;
}
