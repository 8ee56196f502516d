/* expect: clean */
/* A program's own operator delete that jumps to C's free (`jmp free`, as libstdc++'s own
 * delete is built), beside check mode's operator new: the free returns straight to the code
 * that called delete, leaving no frame of the operator for check mode to see, and check mode
 * must find it from that code's call instruction (a direct call here in main, a call through
 * the PLT in libstdc++'s containers). Each block is one family's pair: nothing is reported. */
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <vector>

__attribute__((noinline)) void operator delete(void *p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void *p, std::size_t) noexcept { std::free(p); }

int main() {
    unsigned long sum = 0;
    for (int round = 0; round < 1000; round++) {
        std::string *text = new std::string(40 + round % 300, 'x');
        sum += text->size();
        delete text; /* a direct call of the private delete, of a block from check mode's new */
        std::map<int, std::string> m;
        for (int i = 0; i < 8; i++) m[i] = std::string(30 + i, 'y');
        sum += m.size();
        std::vector<int> v(round % 64 + 1, round);
        sum += v.back();
    }
    std::printf("sum %lu\n", sum);
    return 0;
}
